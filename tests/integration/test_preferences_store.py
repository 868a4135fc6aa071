"""A user's UI settings (language, time zone) in the store, on SQLite and PostgreSQL: set, changed, cleared,
audited; a bad zone or language code is refused and changes nothing."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet

from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, PolicyError
from metrosight.store.db import open_engine
from metrosight.store.preferences import Preferences
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

ADA = Actor("ada", frozenset({"admin"}))
CAROL = Actor("carol", frozenset({"operator"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path) -> Store:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(Fernet.generate_key()), None, 365, ZoneInfo("UTC"))
    s.users.add("ada", ["admin"], None)
    s.users.add("carol", ["operator"], ADA)
    return s


def test_preferences_are_per_user_changed_and_audited(store: Store) -> None:
    assert store.preferences.get("carol") is None
    assert store.preferences.set(CAROL, "ru", "Europe/Moscow") == Preferences("ru", "Europe/Moscow")
    assert store.preferences.get("carol") == Preferences("ru", "Europe/Moscow")
    assert store.preferences.get("ada") is None  # carol's settings are hers only
    store.preferences.set(CAROL, " ", "")  # cleared: the browser's language, the installation's zone
    assert store.preferences.get("carol") == Preferences(None, None)
    rows = [e for e in store.audit.entries() if e.action == "user.preferences"]
    assert [(e.actor, e.target) for e in rows] == [("carol", "carol"), ("carol", "carol")]
    assert store.audit.verify().ok


@pytest.mark.parametrize(("language", "zone"), [("ru", "Mars/Olympus"), ("ru", "../etc/passwd"), ("r u", None)])
def test_a_bad_zone_or_language_is_refused_and_changes_nothing(store: Store, language: str, zone: str | None) -> None:
    store.preferences.set(CAROL, "en", "UTC")
    with pytest.raises(PolicyError) as e:
        store.preferences.set(CAROL, language, zone)
    assert (zone or language).strip() in str(e.value)
    assert store.preferences.get("carol") == Preferences("en", "UTC")
