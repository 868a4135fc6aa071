"""``metrosight webhooks …``: admins (authenticated) manage subscriptions; the secret is printed once."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.helpers import bootstrap, cli


def test_webhooks_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    url = "https://hook:Sup3r-s3cret@receiver.example.org/in?token=tok-123456"
    assert cli(home, "--as", "ada", "watchlist", "create", "missing", "--category", "missing")[0] == 0
    code, out, err = cli(home, "--as", "ada", "webhooks", "add", "VMS", url, "-e", "alert", "-w", "missing")
    assert code == 0, err
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "shown once" in err
    code, out, _ = cli(home, "--as", "ada", "webhooks", "list", "--json")
    (w,) = [json.loads(line) for line in out.splitlines()]
    assert w["event_types"] == ["alert"] and w["watchlists"] == ["missing"]
    assert "Sup3r-s3cret" not in out and "tok-123456" not in out and secret not in out
    code, out, _ = cli(home, "--as", "ada", "webhooks", "list")
    assert code == 0 and "Sup3r" not in out and "VMS" in out
    # not an admin: refused with one line
    code, out, err = cli(home, "--as", "bob", "webhooks", "list")
    assert code != 0 and "admin" in err and "Traceback" not in err
    # bad input: one line, nothing stored
    code, _, err = cli(home, "--as", "ada", "webhooks", "add", "x", "gopher://example.org/")
    assert code == 2 and "http:// or https://" in err
    code, _, err = cli(home, "--as", "ada", "webhooks", "add", "x", "http://example.org/", "-e", "selfie")
    assert code == 2 and "selfie" in err
    code, out, _ = cli(home, "--as", "ada", "webhooks", "deliveries")
    assert code == 0
    code, _, err = cli(home, "--as", "ada", "webhooks", "retry")
    assert code == 2 and "delivery id or --webhook" in err
    code, out, _ = cli(home, "--as", "ada", "webhooks", "retry", "--webhook", str(w["id"]))
    assert code == 0 and "0 dead deliveries" in out
    code, out, _ = cli(home, "--as", "ada", "webhooks", "test", str(w["id"]))
    assert code == 1 and "no answer" in out and "Sup3r" not in out  # receiver.example.org does not resolve here
    code, out, _ = cli(home, "--as", "ada", "webhooks", "pause", str(w["id"]))
    assert code == 0
    code, out, _ = cli(home, "--as", "ada", "webhooks", "remove", str(w["id"]))
    assert code == 0 and "removed webhook" in out
    code, _, err = cli(home, "--as", "ada", "webhooks", "remove", str(w["id"]))
    assert code != 0 and "no webhook" in err
    code, out, _ = cli(home, "--as", "ada", "audit", "show", "--json")
    assert "webhook.add" in out and "webhook.remove" in out and "Sup3r" not in out


def test_webhooks_add_refuses_names_it_cannot_match(tmp_path: Path) -> None:
    """Red team: a mistyped watchlist or camera group was accepted and then never delivered anything."""
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wanted-2026", "--category", "wanted")[0] == 0
    hook = "http://127.0.0.1:9/h"
    code, _, err = cli(home, "--as", "ada", "webhooks", "add", "x", hook, "-w", "Wantd-2026")
    assert code == 2 and "no watchlist 'Wantd-2026' (known: wanted-2026)" in err and "Traceback" not in err
    # camera groups are the configuration's: without --config the command says so rather than guessing
    code, _, err = cli(home, "--as", "ada", "webhooks", "add", "x", hook, "-g", "red")
    assert code == 2 and "no configuration was given" in err and "--config" in err
    assert len(err.strip().splitlines()) == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "cameras: [{id: cam-1, source: a.mp4, line: red, group: okhotny-ryad}]\n"
        "camera_groups: {centre: {cameras: [cam-1]}}\n",
        encoding="utf-8",
    )
    code, _, err = cli(home, "--config", str(cfg), "--as", "ada", "webhooks", "add", "x", hook, "-g", "blu")
    assert code == 2 and "no camera group 'blu' (known: centre, okhotny-ryad, red)" in err
    code, out, _ = cli(home, "--as", "ada", "webhooks", "list", "--json")
    assert out.strip() == ""  # nothing stored by the refusals
    for g in ("red", "okhotny-ryad", "centre"):
        code, _, err = cli(home, "--config", str(cfg), "--as", "ada", "webhooks", "add", g, hook, "-g", g)
        assert code == 0, err


def test_config_check_refuses_an_mqtt_filter_naming_an_unknown_camera_group(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from metrosight.cli import app

    cams = "cameras: [{id: cam-1, source: a.mp4, line: red, group: hall}]\ncamera_groups: {centre: {lines: [red]}}\n"
    f = tmp_path / "c.yaml"
    f.write_text(cams + "outbound: {mqtt: {host: broker, camera_groups: [blu]}}\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    text = r.stdout + r.stderr
    assert r.exit_code == 2 and "outbound.mqtt.camera_groups: no camera group 'blu'" in text, text
    assert "known: centre, hall, red" in text and len(text.strip().splitlines()) == 1
    f.write_text(cams + "outbound: {mqtt: {host: broker, camera_groups: [Red, hall, centre]}}\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["config", "check", str(f)]).exit_code == 0
