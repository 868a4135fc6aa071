"""Names in the store, on SQLite and PostgreSQL: stored normalised, found whatever form is typed (rows written
before the rule included), look-alike entries, watchlists and users refused; scopes and windows by the camera id
rule; the deployment's zone bounds expiries."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from metrosight.core.names import InvalidInput
from metrosight.core.types import Category
from metrosight.core.when import parse_when
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Actor, Authorisation
from metrosight.store.db import open_engine
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.models import Subject, User
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

NFC = "José Núñez"
NFD = unicodedata.normalize("NFD", NFC)
ADA = Actor("ada", frozenset({"admin", "approver"}))
BOB = Actor("bob", frozenset({"approver", "operator"}))
MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(Fernet.generate_key()), None, 365, MSK)
    s.users.add("ada", ["admin", "approver"], None)
    s.users.add("bob", ["approver", "operator"], ADA)
    s.watchlists.create("wanted", Category.WANTED, ADA)
    return s


def auth(days: float = 30, **kw) -> Authorisation:
    return Authorisation("law", "court", "R-1", datetime.now(UTC) + timedelta(days=days), **kw)


def enrol(store: Store, name: str, seed: int = 1, watchlist: str = "wanted", **kw):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return store.entries.enroll(
        watchlist, name, v / np.linalg.norm(v), "m", "p.jpg", f"{seed:064x}", 0.9, ADA, auth(**kw)
    )


def test_an_nfd_name_is_stored_as_nfc_and_approved_by_the_typed_name(store):
    sid, _ = enrol(store, NFD + " ")
    [e] = store.entries.all("wanted")
    assert e.name == NFC and e.id == sid
    assert store.entries.approve("wanted", NFC, BOB) == "active"
    # a second photo under the NFD form or with stray spaces goes to the same entry, not a look-alike second one
    sid2, _ = enrol(store, "  José  Núñez", seed=2)
    assert sid2 == sid and len(store.entries.all("wanted")) == 1


def test_a_row_stored_before_the_rule_is_still_found_by_the_typed_name(store):
    sid, _ = enrol(store, "Placeholder")
    with store.uow.write() as s:  # as an older version stored an NFD folder name
        s.execute(update(Subject).where(Subject.id == sid).values(name=NFD))
    assert store.entries.approve("wanted", NFC, BOB) == "active"
    assert enrol(store, NFC, seed=3)[0] == sid  # the typed name adds to it
    assert len(store.entries.all("wanted")) == 1
    assert store.entries.revoke("wanted", NFC + " ", ADA, "order withdrawn") == 2


@pytest.mark.parametrize("lookalike", ["Jоsé Núñez", "JOSÉ NÚÑEZ", "José Νúñez"])  # Cyrillic о; case; Greek Ν
def test_a_look_alike_entry_is_refused_naming_the_existing_one(store, lookalike):
    enrol(store, NFC)
    with pytest.raises(Conflict, match=f"looks like the existing entry '{NFC}'"):
        enrol(store, lookalike, seed=5)
    assert [e.name for e in store.entries.all("wanted")] == [NFC]


def test_the_same_person_may_be_on_two_watchlists_under_one_name(store):
    store.watchlists.create("missing", Category.MISSING, ADA)
    enrol(store, NFC)
    enrol(store, NFD, watchlist="missing")
    assert sorted((e.watchlist, e.name) for e in store.entries.all()) == [("missing", NFC), ("wanted", NFC)]


def test_look_alike_watchlists_and_users_are_refused(store):
    with pytest.raises(Conflict, match="looks like the existing watchlist 'wanted'"):
        store.watchlists.create("wаnted", Category.WANTED, ADA)  # Cyrillic а
    with pytest.raises(Conflict, match="already exists"):
        store.watchlists.create(" wanted ", Category.WANTED, ADA)
    for name in ("bоb", "BOB", "Bob"):  # Cyrillic о, case
        with pytest.raises(Conflict, match="looks like the existing user 'bob'"):
            store.users.add(name, ["operator"], ADA)
    with pytest.raises(Conflict, match="already exists"):
        store.users.add("bob ", ["operator"], ADA)
    with pytest.raises(Conflict, match="looks like the existing user"):
        store.accounts.add_user("аda", ["operator"], None, ADA)
    assert [u[0] for u in store.users.all()] == ["ada", "bob"]


def test_users_stored_in_another_form_still_act_and_sign_in(store):
    store.users.add(unicodedata.normalize("NFD", "Zoë"), ["operator"], ADA)
    assert [u[0] for u in store.users.all()] == ["Zoë", "ada", "bob"]
    with store.uow.write() as s:  # as an older version stored it
        s.execute(update(User).where(User.name == "Zoë").values(name=unicodedata.normalize("NFD", "Zoë")))
    assert store.users.actor("Zoë").name == unicodedata.normalize("NFD", "Zoë")
    assert store.users.actor(" Zoë ").roles == frozenset({"operator"})
    with pytest.raises(NotFound):
        store.users.actor("Zoe")


@pytest.mark.parametrize("bad", ["", "a/b", "x\x00y", "\u200b"])
def test_unusable_names_are_refused_before_anything_is_written(store, bad):
    with pytest.raises(InvalidInput):
        enrol(store, bad)
    with pytest.raises(InvalidInput):
        store.users.add(bad, ["operator"], ADA)
    assert store.entries.all() == [] and len(store.users.all()) == 2


def test_scopes_and_windows_take_camera_ids_by_the_one_rule(store):
    with pytest.raises(InvalidInput, match="'/'"):
        enrol(store, "Eve", cameras=("red/platform 1",))
    with pytest.raises(InvalidInput, match="starts with '.'"):
        enrol(store, "Eve", lines=("../x",))
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput, match="NUL"):
        store.windows.add("march", ["a\x00b"], [], now, now + timedelta(hours=1), "assembly", ADA)
    wid = store.windows.add(" march ", [" Платформа 1 "], [], now, now + timedelta(hours=1), "assembly", ADA)
    [w] = store.windows.all()
    assert w.id == wid and w.name == "march" and w.scope["cameras"] == ["Платформа 1"]
    assert not store.policy.allows("Платформа 1", None)
    assert store.policy.allows("Платформа 2", None)
    assert store.entries.all() == []


def test_the_last_allowed_expiry_day_is_read_in_the_deployment_zone(store):
    now = datetime.now(UTC)
    last = (now + timedelta(days=365)).astimezone(MSK).date()
    exp = parse_when(last.isoformat(), now, MSK, end=True)
    store.entries.enroll(
        "wanted",
        "Eve",
        np.ones(128, np.float32),
        "m",
        "e.jpg",
        "e" * 64,
        0.9,
        ADA,
        Authorisation("law", "court", "R-1", exp),
    )
    [e] = store.entries.all("wanted")
    assert e.expires_at == exp and e.expires_at.astimezone(MSK).time().isoformat() == "00:00:00"


def test_look_alikes_enrolled_at_the_same_moment_make_one_entry(store):
    from concurrent.futures import ThreadPoolExecutor

    variants = [NFC, NFD, "Jоsé Núñez", "JOSÉ NÚÑEZ", " José Núñez ", "José Νúñez"] * 2

    def one(i_name):
        i, name = i_name
        try:
            enrol(store, name, seed=10 + i)
            return "ok"
        except Conflict:
            return "refused"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(one, enumerate(variants)))
    entries = store.entries.all("wanted")
    assert len(entries) == 1, [e.name for e in entries]
    winner = entries[0].name
    assert all((o == "ok") == looks_same(v, winner) for o, v in zip(outcomes, variants, strict=True))


def looks_same(a: str, b: str) -> bool:
    from metrosight.core.names import same_name

    return same_name(a, b)
