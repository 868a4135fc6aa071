"""The ``auth:`` section: single sign-on settings refused with the key and the reason, the secret never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from metrosight.config.model import Settings

OIDC = {
    "issuer": "https://sso.example.org/realms/metro",
    "client_id": "metrosight",
    "redirect_url": "https://ms.example.org/auth/oidc/callback",
}
CAMERAS = [{"id": "cam-1", "source": "rtsp://10.0.0.9/s", "line": "red"}]


def settings(auth: dict[str, Any]) -> Settings:
    return Settings.model_validate({"cameras": CAMERAS, "auth": auth})


def test_the_defaults_keep_local_accounts_and_no_sso() -> None:
    s = Settings()
    assert s.auth.local_accounts and s.auth.oidc is None


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({"issuer": "http://sso.example.org"}, "https://"),
        ({"issuer": "not a url"}, "absolute"),
        ({"redirect_url": "https://ms.example.org/callback"}, "/auth/oidc/callback"),
        ({"redirect_url": "https://u:p@ms.example.org/auth/oidc/callback"}, "user name"),
        ({"scopes": ["profile", "email"]}, "openid"),
        ({"client_secret": "a", "client_secret_file": "/x"}, "not both"),
        ({"mappings": [{"roles": ["operator"]}]}, "exactly one"),
        ({"mappings": [{"group": "g", "claim": "c", "value": "v", "roles": ["operator"]}]}, "exactly one"),
        ({"mappings": [{"claim": "dept", "roles": ["operator"]}]}, "needs value"),
        ({"mappings": [{"group": "g", "roles": ["superuser"]}]}, "roles"),
        ({"mappings": [{"group": "g", "roles": ["admin"], "camera_groups": ["red"]}]}, "cannot be scoped"),
        ({"mappings": [{"group": "g", "roles": ["operator"], "camera_groups": ["green"]}]}, "no camera group 'green'"),
        ({"mappings": [{"group": "g", "roles": ["operator"], "camera_groups": ["a/b"]}]}, "camera group"),
    ],
)
def test_bad_single_sign_on_settings_are_refused(oidc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(
            {"oidc": {**OIDC, "client_secret": "x", **oidc}}
            if "client_secret" not in oidc
            else {"oidc": {**OIDC, **oidc}}
        )


def test_loopback_http_and_a_good_mapping_are_accepted() -> None:
    mapping = {"group": "/metro/red-operators", "roles": ["operator"], "camera_groups": ["Red"], "watchlists": ["w"]}
    s = settings({"oidc": {**OIDC, "issuer": "http://127.0.0.1:5556/dex", "mappings": [mapping]}})
    assert s.auth.oidc is not None and s.auth.oidc.issuer == "http://127.0.0.1:5556/dex"
    assert s.auth.oidc.mappings[0].group == "/metro/red-operators"
    assert s.auth.oidc.logout_return() == "https://ms.example.org/login"


def test_local_accounts_off_needs_a_way_in() -> None:
    with pytest.raises(ValidationError, match="nobody could sign in"):
        settings({"local_accounts": False})
    assert not settings({"local_accounts": False, "break_glass_users": ["chief"]}).auth.local_accounts


def test_the_secret_comes_from_a_file_or_the_environment_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-s3cret\n")
    s = settings({"oidc": {**OIDC, "client_secret_file": str(secret)}})
    assert s.auth.oidc is not None and s.auth.oidc.secret() == "file-s3cret"
    assert "file-s3cret" not in repr(s) and "file-s3cret" not in str(s.model_dump())
    missing = settings({"oidc": {**OIDC, "client_secret_file": str(tmp_path / "none")}})
    with pytest.raises(ValueError, match="cannot read it"):
        missing.auth.oidc.secret()  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="METROSIGHT__AUTH__OIDC__CLIENT_SECRET"):
        settings({"oidc": OIDC}).auth.oidc.secret()  # type: ignore[union-attr]
    from metrosight.config.load import load_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "auth:\n  oidc: {issuer: 'https://sso.example.org/realms/metro', client_id: ms, "
        "redirect_url: 'https://ms.example.org/auth/oidc/callback'}\n"
    )
    monkeypatch.setenv("METROSIGHT__AUTH__OIDC__CLIENT_SECRET", "env-s3cret")
    loaded = load_settings(cfg)
    assert loaded.auth.oidc is not None and loaded.auth.oidc.secret() == "env-s3cret"
    assert "env-s3cret" not in repr(loaded)


def test_config_check_never_echoes_the_secret(tmp_path: Path) -> None:
    from metrosight.config.load import ConfigError, load_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "auth:\n  oidc: {issuer: 'https://sso.example.org/x', client_id: ms, client_secret: [TOPSECRET1], "
        "redirect_url: 'https://ms.example.org/auth/oidc/callback'}\n"
    )
    with pytest.raises(ConfigError, match="client_secret") as exc:
        load_settings(cfg)
    assert "TOPSECRET1" not in str(exc.value)
