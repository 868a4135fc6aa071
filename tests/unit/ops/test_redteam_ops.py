"""Red-team tests of the operations commands (doctor, backup): hostile inputs a user, an insider or a client makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metrosight.config.model import Settings
from metrosight.core.credentials import safe_url
from metrosight.ops.doctor import check_bus, check_database

SECRET = "s3cr3tPW"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://user:{SECRET}@host:notaport/db",  # cannot be parsed: a bad port
        f"postgresql://user@host/db?password={SECRET}",  # libpq's password in the query string
        f"postgresql://user@host/db?sslmode=require&sslpassword={SECRET}",
        f"redis://:{SECRET}@127.0.0.1:xx/0",
        f"redis://127.0.0.1:6379/0?password={SECRET}",
        f"postgresql://us:{SECRET}@[::1/db",
        f"postgresql://user:p@ss{SECRET}@host/db",  # an unencoded @ in the password
    ],
)
def test_safe_url_never_shows_a_password(url: str) -> None:
    shown = safe_url(url)
    assert SECRET not in shown
    assert shown.split("://")[0] == url.split("://")[0]


def test_safe_url_keeps_what_is_not_secret() -> None:
    assert safe_url("postgresql+psycopg://u:pw@db.local:5432/ms?sslmode=require") == (
        "postgresql+psycopg://u:***@db.local:5432/ms?sslmode=require"
    )
    assert safe_url("sqlite:////var/lib/a@b/metrosight.db") == "sqlite:////var/lib/a@b/metrosight.db"


@pytest.mark.parametrize(
    "url", [f"redis://:{SECRET}@127.0.0.1:xx/0", f"redis://127.0.0.1:1/0?password={SECRET}", "redis://[::1"]
)
def test_doctor_redis_check_hides_the_password_of_a_bad_url(url: str) -> None:
    check = check_bus(url)
    assert check.status.value == "fail"
    assert SECRET not in json.dumps(check.as_dict()) and SECRET not in check.line()


@pytest.mark.parametrize(
    "url", [f"postgresql://user:{SECRET}@host:notaport/db", f"postgresql://user@127.0.0.1:1/db?password={SECRET}"]
)
def test_doctor_database_check_hides_the_password_of_a_bad_url(url: str, tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"database_url": url}})
    checks = list(check_database(settings, tmp_path))
    assert checks[0].status.value == "fail"
    for check in checks:
        assert SECRET not in json.dumps(check.as_dict()) and SECRET not in check.line()


# --- the keys file: a hostile or damaged file, unicode and weak passphrases -------------------------------------

PHRASE = "correct horse battery staple"


def _keys(phrase: str = PHRASE) -> tuple[bytes, bytes]:
    from cryptography.fernet import Fernet

    from metrosight.ops.sealed import seal_keys

    mk = Fernet.generate_key()
    return mk, seal_keys({"master_key": mk.decode()}, phrase, "20261130T000000Z-abcd", mk)


@pytest.mark.parametrize(
    "edit",
    [
        {"kdf.n": 3},  # not a power of two: scrypt refuses it with a ValueError
        {"kdf.n": 1 << 20, "kdf.r": 32},  # 4 GiB of memory asked by an altered file
        {"nonce": "AAAA"},  # a 3-byte nonce: AES-GCM refuses it with a ValueError
    ],
)
def test_an_altered_keys_file_is_one_clear_error(edit: dict[str, object]) -> None:
    from metrosight.ops.sealed import SealError, open_keys

    _, raw = _keys()
    doc = json.loads(raw)
    for path, value in edit.items():
        *parents, leaf = path.split(".")
        target = doc
        for p in parents:
            target = target[p]
        target[leaf] = value
    with pytest.raises(SealError):
        open_keys(json.dumps(doc).encode(), PHRASE)


def test_a_unicode_passphrase_opens_however_its_accents_were_typed() -> None:
    import unicodedata

    from metrosight.ops.sealed import open_keys

    phrase = "pässwörd über Ærøskøbing"
    mk, raw = _keys(unicodedata.normalize("NFD", phrase))
    secrets, _ = open_keys(raw, unicodedata.normalize("NFC", phrase))
    assert secrets["master_key"].encode() == mk


@pytest.mark.parametrize("phrase", ["", " " * 12, "a" * 40, "abababababababab", "   short pw   "])
def test_a_weak_passphrase_is_refused(phrase: str) -> None:
    from metrosight.ops.sealed import SealError

    with pytest.raises(SealError, match="at least 12 characters"):
        _keys(phrase)


# --- backup: where its files go ---------------------------------------------------------------------------------


class _NoAudit:
    """Stands for the store's audit log: a backup refused before it starts records nothing."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def record(self, actor: str, action: str, target: str | None, details: dict[str, object]) -> None:
        self.entries.append(action)

    def verify(self) -> object:
        raise AssertionError("not called")

    def checkpoint(self) -> None:
        pass


class _Store:
    def __init__(self) -> None:
        self.audit = _NoAudit()


@pytest.mark.parametrize("where", ["media/backups", ".", "calibration", "link"])
def test_a_backup_is_never_written_inside_the_home(tmp_path: Path, where: str) -> None:
    """Inside the home (media/ above all) a later backup would copy an earlier one's keys file into its data file."""
    from cryptography.fernet import Fernet

    from metrosight.ops.backup import BackupError, create_backup

    home = tmp_path / "home"
    (home / "media").mkdir(parents=True)
    (tmp_path / "link").symlink_to(home / "media")  # a folder outside that leads back in
    out = tmp_path / where if where == "link" else home / where
    store = _Store()
    for data_dir, keys_dir in ((out, tmp_path / "vault"), (tmp_path / "safe", out)):
        with pytest.raises(BackupError, match="inside the home"):
            create_backup(store, home, Fernet.generate_key(), home / "cp", data_dir, PHRASE, "ada", keys_out=keys_dir)
    assert store.audit.entries == []
    assert not (tmp_path / "vault").exists() and not (tmp_path / "safe").exists()


# --- the passphrase file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe\xfd not utf-8 at all", "not UTF-8"), (b"x" * 5000, "over 4096 bytes")],
)
def test_a_bad_passphrase_file_is_one_clear_error(
    tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from metrosight.cli.ops import read_passphrase

    f = tmp_path / "phrase"
    f.write_bytes(content)
    with pytest.raises(typer.Exit) as exc:
        read_passphrase(f, confirm=False)
    assert exc.value.exit_code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_passphrase_file_saved_with_a_byte_order_mark_reads_as_typed(tmp_path: Path) -> None:
    from metrosight.cli.ops import read_passphrase

    f = tmp_path / "phrase"
    f.write_bytes("\ufeffcorrect horse battery\r\n".encode())
    assert read_passphrase(f, confirm=False) == "correct horse battery"


# --- doctor --json: one JSON document for every failure, an invalid configuration included ----------------------


@pytest.mark.parametrize(
    ("config", "env"),
    [
        ("cameras:\n  - {id: c1, source: 'srt://op:" + SECRET + "@10.0.0.1:9000'}\n", {}),
        ("cameras:\n  - {id: c1, source: 'rtsp://op:" + SECRET + "@10.0.0.1:bad/s'}\n", {}),
        ("cameras: 5\n", {}),
        ("", {"METROSIGHT__STORAGE__DATABASE_URL": "42"}),
    ],
)
def test_doctor_json_reports_an_invalid_configuration_as_a_failing_check(
    tmp_path: Path, config: str, env: dict[str, str]
) -> None:
    from tests.integration.helpers import cli

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config)
    code, out, err = cli(tmp_path / "home", "doctor", "--config", cfg, "--no-models", "--json", env=env)
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    first = doc["checks"][0]
    assert first["name"] == "config" and first["status"] == "fail" and "invalid configuration" in first["detail"]
    assert {"python", "packages", "ffmpeg", "home"} <= {c["name"] for c in doc["checks"]}
    assert SECRET not in out + err
    code, out, _ = cli(tmp_path / "home", "doctor", "--config", cfg, "--no-models", env=env)
    assert code == 1 and out.startswith("[fail] config: invalid configuration")


# --- doctor: a master.key that cannot be read is the keys check's failure, not a traceback ------------------------


@pytest.mark.parametrize("kind", ["folder", "not utf-8"])
def test_doctor_reports_an_unreadable_master_key_as_a_failing_keys_check(tmp_path: Path, kind: str) -> None:
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    if kind == "folder":
        (home / "master.key").mkdir()
    else:
        (home / "master.key").write_bytes(b"\xff\xfe not a key")
    code, out, err = cli(home, "doctor", "--no-models", "--json")
    doc = json.loads(out)
    keys = next(c for c in doc["checks"] if c["name"] == "keys")
    assert code == 1 and keys["status"] == "fail" and "master.key" in keys["detail"], keys


@pytest.mark.parametrize("kind", ["garbage", "folder", "empty environment variable"])
def test_a_bad_master_key_is_one_line_for_every_command(tmp_path: Path, kind: str) -> None:
    """The service's env file ships ``METROSIGHT_MASTER_KEY=`` (empty): every command then ended in a traceback."""
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {"METROSIGHT_MASTER_KEY": ""} if kind.startswith("empty") else {"METROSIGHT_MASTER_KEY": None}
    if kind == "garbage":
        (home / "master.key").write_text("not a key")
    elif kind == "folder":
        (home / "master.key").mkdir()
    for args in (("watchlist", "entries"), ("alert", "list"), ("audit", "verify")):
        code, out, err = cli(home, *args, env=env)  # type: ignore[arg-type]
        assert code == 1, (args, out, err)
        assert err.startswith("error: ") and "master key" in err and "Traceback" not in err


def test_doctor_on_the_shipped_env_file_says_the_master_key_is_empty_and_how_to_make_one(tmp_path: Path) -> None:
    """README's install runs doctor with metrosight.env.example (``METROSIGHT_MASTER_KEY=``): the advice was to
    restore a backup that a new installation does not have."""
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    code, out, _ = cli(home, "doctor", "--no-models", "--json", env={"METROSIGHT_MASTER_KEY": ""})
    keys = next(c for c in json.loads(out)["checks"] if c["name"] == "keys")
    assert code == 1 and keys["status"] == "fail"
    assert "empty" in keys["detail"] and "generate" in keys["fix"]


def test_doctor_on_a_home_that_is_a_file(tmp_path: Path) -> None:
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    home.write_text("not a folder")
    code, out, _ = cli(home, "doctor", "--no-models", "--json")
    check = next(c for c in json.loads(out)["checks"] if c["name"] == "home")
    assert code == 1 and check["status"] == "fail" and "is not a folder" in check["detail"]


@pytest.mark.parametrize(
    "url", [f"postgresql://u:{SECRET}@db.local:bad/ms", f"postgresql://u:p@ss:{SECRET}@db.local/ms", "nonsense"]
)
def test_a_database_url_that_cannot_be_read_is_one_line_for_every_command(tmp_path: Path, url: str) -> None:
    """A bad port or an unencoded reserved character in the password raised a ValueError: a traceback."""
    from tests.integration.helpers import cli

    for args in (("alert", "list"), ("watchlist", "entries"), ("db", "upgrade")):
        code, out, err = cli(tmp_path / "home", *args, env={"METROSIGHT__STORAGE__DATABASE_URL": url})
        assert code == 1 and err.startswith("error: cannot open database") and "cannot be read" in err, (args, err)
        assert SECRET not in out + err


# --- the Redis bus URL (METROSIGHT_BUS=redis://:PASSWORD@…, as metrosight.env.example has it) ----------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("url", [f"redis://:{SECRET}@127.0.0.1:{{port}}/0", f"redis://:{SECRET}@127.0.0.1:bad/0"])
def test_worker_and_consume_say_redis_is_unreachable_without_its_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cannot reach Redis at redis://:PASSWORD@…`` went to the journal; a bad port was a traceback."""
    import typer

    from metrosight.cli.cluster import ping

    with pytest.raises(typer.Exit):
        ping(url.format(port=_closed_port()))
    err = capsys.readouterr().err
    assert "cannot reach Redis" in err and SECRET not in err


def test_the_bus_logs_and_errors_never_show_the_redis_password(caplog: pytest.LogCaptureFixture) -> None:
    from metrosight.bus.base import TOPIC_ALERTS
    from metrosight.bus.payloads import AlertV1
    from metrosight.bus.redis_streams import BusUnavailable, RedisStreamsBus

    bus = RedisStreamsBus(f"redis://:{SECRET}@127.0.0.1:{_closed_port()}/0", prefix="t", publish_timeout=0.2)
    a = AlertV1(
        event_id="cam:s:1.0",
        camera_id="cam",
        track_id=1,
        subject_id=1,
        subject="P",
        watchlist="wl",
        category="wanted",
        score=0.95,
        distance=0.3,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        crop_jpeg=None,
    )
    with caplog.at_level("WARNING"), pytest.raises(BusUnavailable) as exc:
        bus.publish(TOPIC_ALERTS, a)
    assert "127.0.0.1" in str(exc.value) and SECRET not in str(exc.value)
    assert caplog.records and SECRET not in caplog.text


def test_serve_with_a_bus_announces_it_without_the_redis_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``metrosight serve --bus redis://:PASSWORD@…`` printed the whole URL in its start-up line (the journal)."""
    import uvicorn

    from tests.integration.helpers import cli

    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)  # the line is printed before the server runs
    code, out, err = cli(tmp_path / "home", "serve", "--bus", f"redis://:{SECRET}@127.0.0.1:6390/0")
    assert code == 0 and "on the workers of redis://:***@127.0.0.1:6390/0" in err, err
    assert SECRET not in out + err


@pytest.mark.parametrize("what", ["file", "fifo", "device"])
def test_a_backup_folder_that_is_not_a_folder_is_refused_before_anything(tmp_path: Path, what: str) -> None:
    import os

    from cryptography.fernet import Fernet

    from metrosight.ops.backup import BackupError, create_backup

    home = tmp_path / "home"
    (home / "media").mkdir(parents=True)
    target = tmp_path / "out"
    if what == "file":
        target.write_text("x")
    elif what == "fifo":
        os.mkfifo(target)
    else:
        target = Path("/dev/null")
    store = _Store()
    with pytest.raises(BackupError, match="is not a folder"):
        create_backup(store, home, Fernet.generate_key(), home / "cp", target, PHRASE, "ada", keys_out=tmp_path / "k")
    assert store.audit.entries == [] and not (tmp_path / "k").exists()


def test_restore_from_a_device_or_folder_says_it_is_not_a_file(tmp_path: Path) -> None:
    from metrosight.ops.backup import BackupError, restore_backup

    keys = tmp_path / "x.keys"
    keys.write_text("{}")
    for data in (Path("/dev/null"), tmp_path):
        with pytest.raises(BackupError, match="is not a file"):
            restore_backup(data, keys, PHRASE, tmp_path / "dst", lambda home, url: None)
    with pytest.raises(BackupError, match="not found"):
        restore_backup(tmp_path / "gone.backup", keys, PHRASE, tmp_path / "dst", lambda home, url: None)
    assert not (tmp_path / "dst").exists()
