"""People signing in through an OpenID provider, in the store, on SQLite and on a real PostgreSQL server: one user
per subject, names that never take or mimic a local account's, links by an admin (audited), roles and scopes from
the claims at every sign-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metrosight.core.names import looks_alike
from metrosight.core.types import Category
from metrosight.policy.crypto import KeyRing
from metrosight.policy.rules import Forbidden, PolicyError
from metrosight.policy.scope import CameraGroups
from metrosight.policy.sso import ClaimGrant, OidcPerson
from metrosight.store.db import open_engine
from metrosight.store.errors import Conflict, NotFound
from metrosight.store.repo import Store

pytestmark = pytest.mark.integration

ISS = "https://sso.example.org/realms/metro"
OPERATOR_RED = (ClaimGrant("operator", frozenset({"red"})),)


def person(sub: str, name: str | None = None, email: str | None = None, grants=OPERATOR_RED) -> OidcPerson:  # type: ignore[no-untyped-def]
    return OidcPerson(ISS, sub, name, email, grants, ("group red-ops",))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'x.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(open_engine(url), KeyRing(Fernet.generate_key()), None, camera_groups=CameraGroups.of({"red": ["c1"]}))
    s.users.add("root", ["admin"], None)
    yield s
    s.engine.dispose()


def audit(s: Store, action: str) -> list[tuple[str, str | None, dict]]:  # type: ignore[type-arg]
    return [(e.actor, e.target, json.loads(e.details or "{}")) for e in s.audit.entries() if e.action == action]


def test_one_user_per_subject_with_the_mapped_roles_and_scope(store: Store) -> None:
    first = store.identities.sign_in(person("s-1", "olga"), "10.0.0.1")
    again = store.identities.sign_in(person("s-1", "olga"), "10.0.0.2")
    assert first.actor is not None and again.actor is not None and first.created and not again.created
    assert first.actor.name == again.actor.name == "olga"
    assert first.actor.scope_of("operator").camera_groups == frozenset({"red"})
    assert [n for n, _, _ in store.users.all()].count("olga") == 1
    assert [(a, t) for a, t, _ in audit(store, "auth.login")] == [("olga", "olga"), ("olga", "olga")]


def test_a_new_subject_never_takes_or_mimics_an_existing_name(store: Store) -> None:
    root = store.users.actor("root")
    store.users.add("olga", ["viewer"], root)  # a local account
    a = store.identities.sign_in(person("s-1", "olga"), "ip").actor
    b = store.identities.sign_in(person("s-2", "оlga"), "ip").actor  # Cyrillic о: a look-alike of olga
    c = store.identities.sign_in(person("s-3", "bad/name"), "ip").actor
    assert a is not None and b is not None and c is not None
    assert a.name == "olga (sso)" and c.name.startswith("sso-")
    names = [a.name, b.name, c.name, "olga"]
    assert not any(looks_alike(x, y) for i, x in enumerate(names) for y in names[i + 1 :])
    assert store.users.actor("olga").roles == frozenset({"viewer"})  # the local account is untouched
    # nor a name the audit log uses for acts of nobody in particular ("oidc" makes the users and role changes)
    for i, hint in enumerate(["oidc", "Anonymous", "system"]):
        got = store.identities.sign_in(person(f"r-{i}", hint), "ip").actor
        assert got is not None and got.name == f"{hint} (sso)"


def test_roles_and_scopes_follow_the_claims_and_are_audited(store: Store) -> None:
    store.identities.sign_in(person("s-1", "olga"), "ip")
    viewer = (ClaimGrant("viewer"),)
    assert store.identities.sign_in(person("s-1", "olga", grants=viewer), "ip").actor.roles == {"viewer"}  # type: ignore[union-attr]
    [(by, target, change)] = audit(store, "user.update")
    assert (by, target, change["roles"]) == ("oidc", "olga", {"from": ["operator"], "to": ["viewer"]})
    assert change["scopes"] == {"from": {"operator": ["cameras:red"]}, "to": {}}
    refused = store.identities.sign_in(person("s-1", "olga", grants=()), "ip")
    assert refused.actor is None and "no group" in (refused.refused or "")
    assert store.users.all()[0:2] and ("olga", [], False) in store.users.all()


def test_a_disabled_user_cannot_sign_in_through_the_provider(store: Store) -> None:
    store.identities.sign_in(person("s-1", "olga"), "ip")
    store.accounts.update_user("olga", store.users.actor("root"), disabled=True)
    out = store.identities.sign_in(person("s-1", "olga"), "ip")
    assert out.actor is None and out.refused == "the account is disabled"
    assert audit(store, "auth.oidc_refused")[-1][2]["reason"] == "the account is disabled"


def test_links_are_made_by_admins_only_and_audited(store: Store) -> None:
    root = store.users.actor("root")
    store.users.add("chief", ["approver"], root)
    with pytest.raises(Forbidden):
        store.identities.link("chief", ISS, store.users.actor("chief"), subject="s-9")
    with pytest.raises(NotFound):
        store.identities.link("nobody", ISS, root, subject="s-9")
    with pytest.raises(PolicyError):
        store.identities.link("chief", ISS, root)
    store.identities.link("chief", ISS, root, email="Chie\u0301f@Metro.example")  # typed decomposed (NFD)
    with pytest.raises(Conflict):
        store.identities.link("root", ISS, root, email="chi\u00e9f@metro.example")
    # an unverified address (OidcPerson.email is None then) does not complete the link: a person of its own
    stranger = store.identities.sign_in(person("s-5", "chief"), "ip").actor
    assert stranger is not None and stranger.name != "chief"
    # the verified address does, once; the subject then stays linked
    got = store.identities.sign_in(person("s-6", "whoever", email="chi\u00e9f@metro.example"), "ip").actor
    assert got is not None and got.name == "chief" and got.roles == {"operator"}
    assert store.identities.sign_in(person("s-6"), "ip").actor.name == "chief"  # type: ignore[union-attr]
    assert [i.subject for i in store.identities.of_user("chief", root)] == ["s-6"]
    store.identities.unlink("chief", ISS, root, subject="s-6")
    assert store.identities.sign_in(person("s-6", "whoever"), "ip").actor.name == "whoever"  # type: ignore[union-attr]
    assert [a for a, _, _ in audit(store, "oidc.link")] == ["root", "oidc"]
    assert [(a, t) for a, t, _ in audit(store, "oidc.unlink")] == [("root", "chief")]


def test_a_mapped_watchlist_must_exist(store: Store) -> None:
    grants = (ClaimGrant("approver", watchlists=frozenset({"missing-2026"})),)
    out = store.identities.sign_in(person("s-1", "ann", grants=grants), "ip")
    assert out.actor is None and "no watchlist" in (out.refused or "")
    store.watchlists.create("missing-2026", Category.MISSING, store.users.actor("root"))
    ann = store.identities.sign_in(person("s-1", "ann", grants=grants), "ip").actor
    assert ann is not None and ann.scope_of("approver").watchlists == frozenset({"missing-2026"})


def test_an_identity_user_has_no_local_password(store: Store) -> None:
    store.identities.sign_in(person("s-1", "olga"), "ip")
    with pytest.raises(Forbidden, match="single sign-on"):
        store.accounts.set_password("olga", "velvet compass harbour", store.users.actor("root"))


def test_the_cli_links_and_unlinks_as_an_admin(tmp_path: Path) -> None:
    from tests.integration.helpers import bootstrap, cli

    home = tmp_path / "home"
    bootstrap(home)
    code, out, err = cli(home, "--as", "bob", "sso", "link", "bob", "--subject", "s-1", "--issuer", ISS)
    assert code != 0 and "admin" in err
    code, out, _ = cli(home, "--as", "ada", "sso", "link", "bob", "--subject", "s-1", "--issuer", ISS)
    assert code == 0 and "bob: linked to subject s-1" in out
    code, out, _ = cli(home, "--as", "ada", "sso", "link", "bob", "--email", "bob@metro.example", "--issuer", ISS)
    assert code == 0 and "verified address bob@metro.example" in out
    code, out, _ = cli(home, "--as", "ada", "sso", "list", "bob")
    assert code == 0 and "s-1" in out and "bob@metro.example" in out
    code, _, err = cli(home, "--as", "ada", "sso", "link", "bob", "--subject", "s-2")
    assert code != 0 and "--issuer" in err  # no auth.oidc configured: the issuer must be named
    assert cli(home, "--as", "ada", "sso", "unlink", "bob", "--subject", "s-1", "--issuer", ISS)[0] == 0
    code, _, err = cli(home, "--as", "ada", "sso", "unlink", "bob", "--subject", "s-1", "--issuer", ISS)
    assert code != 0 and "no such single sign-on link" in err
    code, out, _ = cli(home, "--as", "ada", "audit", "show", "--last", "10")
    assert "oidc.link" in out and "oidc.unlink" in out


def test_config_check_and_serve_refuse_an_unreadable_client_secret_in_one_line(tmp_path: Path) -> None:
    from tests.integration.helpers import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "auth:\n  oidc: {issuer: 'https://sso.example.org/x', client_id: ms, "
        f"client_secret_file: '{tmp_path / 'missing'}', redirect_url: 'https://ms.example.org/auth/oidc/callback'}}\n"
    )
    for args in (["config", "check", str(cfg)], ["serve", "--config", str(cfg), "--no-cameras"]):
        code, out, err = cli(tmp_path / "home", *args)
        assert code != 0 and "client_secret_file" in err and "cannot read it" in err and "Traceback" not in err
    (tmp_path / "missing").write_text("s3cret\n")
    code, out, _ = cli(tmp_path / "home", "config", "check", str(cfg))
    assert code == 0 and "s3cret" not in out
