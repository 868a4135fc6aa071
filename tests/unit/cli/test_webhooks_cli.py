"""``metrosight webhooks …``: admins (authenticated) manage subscriptions; the secret is printed once."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.helpers import bootstrap, cli


def test_webhooks_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bootstrap(home)
    url = "https://hook:Sup3r-s3cret@receiver.example.org/in?token=tok-123456"
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
