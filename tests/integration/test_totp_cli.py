"""The second factor in the CLI: an admin without one may only enrol it (with the default requirement); then every
password sign-in of the CLI needs a code (METROSIGHT_TOTP or a prompt), a wrong or reused code is refused and
audited, a recovery code works once, an admin resets another user's factor."""

from __future__ import annotations

import json

from metrosight.policy.totp import code_at, current_step
from metrosight.store.repo import Store
from tests.integration.helpers import bootstrap, cli

ON = {"METROSIGHT__TOTP__REQUIRED_ROLES": "[admin, approver]"}


def audit(home):  # type: ignore[no-untyped-def]
    return [(e.actor, e.action, json.loads(e.details or "{}")) for e in Store.for_home(home).audit.entries()]


def test_enrol_then_sign_in_with_codes(tmp_path):
    home = tmp_path / "home"
    bootstrap(home)  # ada (admin, …) and bob (approver, operator), before the requirement
    code, _, err = cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted", env=ON)
    assert code != 0 and "needs a second factor" in err and "user totp enrol" in err
    code, out, err = cli(home, "--as", "ada", "user", "totp", "enrol", env=ON, input="")
    assert code == 0, err
    lines = out.strip().splitlines()
    secret, uri = lines[-2], lines[-1]
    assert uri.startswith("otpauth://totp/metrosight:ada?secret=" + secret)
    assert "user totp confirm CODE" in err
    code, _, err = cli(home, "--as", "ada", "user", "totp", "confirm", "000000", env=ON)
    assert code != 0 and "wrong code" in err
    code, out, err = cli(home, "--as", "ada", "user", "totp", "confirm", code_at(secret, current_step()), env=ON)
    assert code == 0, err
    recovery = [ln for ln in out.splitlines() if len(ln) == 11 and ln[5] == "-"]
    assert len(recovery) == 10
    # now every password sign-in asks for the code
    args = ("--as", "ada", "watchlist", "create", "wl", "--category", "wanted")
    code, _, err = cli(home, *args, env=ON)
    assert code != 0 and "METROSIGHT_TOTP" in err
    code, _, err = cli(home, *args, env={**ON, "METROSIGHT_TOTP": "12345x"})
    assert code != 0 and "wrong code" in err
    fresh = code_at(secret, current_step() + 1)
    code, _, err = cli(home, *args, env={**ON, "METROSIGHT_TOTP": fresh})
    assert code == 0, err
    code, _, err = cli(home, "--as", "ada", "alert", "list", env={**ON, "METROSIGHT_TOTP": fresh})
    assert code != 0 and "already used" in err
    # the requirement switched off does not switch the factor off: who has one gives its code
    code, _, err = cli(home, "--as", "ada", "alert", "list", env={"METROSIGHT_TOTP": recovery[0]})
    assert code == 0, err
    code, _, err = cli(home, "--as", "ada", "alert", "list", env={"METROSIGHT_TOTP": recovery[0]})
    assert code != 0 and "wrong code" in err
    rows = audit(home)
    assert ("ada", "watchlist.create") in [(a, b) for a, b, _ in rows]
    reasons = [d["reason"] for _, act, d in rows if act == "auth.totp_failed"]
    assert reasons == ["wrong code", "code already used", "wrong code"]
    assert ("ada", "totp.recovery_used", {"recovery_left": 9}) in rows


def test_an_admin_resets_another_users_factor(tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    _, out, _ = cli(home, "--as", "bob", "user", "totp", "enrol", env=ON, input="")
    secret = out.strip().splitlines()[-2]
    assert cli(home, "--as", "bob", "user", "totp", "confirm", code_at(secret, current_step()), env=ON)[0] == 0
    code, out, _ = cli(home, "--as", "bob", "user", "totp", "status", env={"METROSIGHT_TOTP": "000000"})
    assert code != 0
    # ada has no factor and the requirement is off: she resets bob's; bob must enrol again
    code, out, err = cli(home, "--as", "ada", "user", "totp", "reset", "bob")
    assert code == 0 and "removed" in out, err
    code, _, err = cli(home, "--as", "bob", "alert", "list", env=ON)
    assert code != 0 and "needs a second factor" in err
    assert ("ada", "totp.reset", {"confirmed": True, "had_factor": True, "own": False}) in audit(home)
    # an operator may not reset anyone's
    assert cli(home, "--as", "ada", "user", "add", "carol", "-r", "operator")[0] == 0
    code, _, err = cli(home, "--as", "carol", "user", "totp", "reset", "ada")
    assert code != 0 and "admin" in err
