"""Issue 15, finding 6: the CLI authenticates its user for governed actions (``--as NAME`` alone is not enough)."""

from __future__ import annotations

from metrosight.store.repo import Store
from tests.integration.helpers import bootstrap, cli, json_lines, password_of

NO_CREDENTIAL = {"METROSIGHT_PASSWORD": None, "METROSIGHT_TOKEN": None}


def actions(home):
    return [(e.actor, e.action) for e in Store.for_home(home).audit.entries()]


def test_a_name_without_a_credential_acts_as_nobody(tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    before = actions(home)
    # the shell user names an operator and an admin, but knows neither's password
    for args in (
        ("--as", "ada", "watchlist", "create", "wl", "--category", "wanted"),
        ("--as", "bob", "alert", "list"),
        ("--as", "ada", "token", "create", "mine", "--user", "ada"),
        ("--as", "ada", "user", "add", "eve", "-r", "admin"),
        ("--as", "ada", "audit", "show"),
        ("--as", "ada", "purge"),
    ):
        code, out, err = cli(home, *args, env=NO_CREDENTIAL, input="")
        assert code != 0
        assert "must authenticate" in err and "METROSIGHT_TOKEN" in err, err
        assert "mst_" not in out
    assert actions(home) == before  # nothing was done, nothing recorded as theirs
    assert Store.for_home(home).watchlists.all() == []


def test_a_wrong_password_is_refused_and_audited(tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    code, _, err = cli(
        home,
        "--as",
        "ada",
        "watchlist",
        "create",
        "wl",
        "--category",
        "wanted",
        env={"METROSIGHT_PASSWORD": password_of("bob")},
    )
    assert code != 0 and "wrong password for 'ada'" in err
    assert Store.for_home(home).watchlists.all() == []
    assert actions(home)[-1] == ("anonymous", "cli.auth_failed")
    assert cli(home, "audit", "verify")[0] == 0  # read-only verification needs no credential


def test_the_right_password_or_a_token_from_the_environment(tmp_path):
    home = tmp_path / "home"
    bootstrap(home)
    assert cli(home, "--as", "ada", "watchlist", "create", "wl", "--category", "wanted")[0] == 0
    assert actions(home)[-1] == ("ada", "watchlist.create")
    code, out, err = cli(home, "--as", "bob", "token", "create", "script", "--days", "1")
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert token.startswith("mst_")
    # the token names its user: no --as and no password needed
    code, out, err = cli(home, "alert", "list", "--json", env={"METROSIGHT_TOKEN": token})
    assert code == 0, err
    assert actions(home)[-1] == ("bob", "alert.list")
    # …and cannot be used to claim another name
    code, _, err = cli(home, "--as", "ada", "alert", "list", env={"METROSIGHT_TOKEN": token})
    assert code != 0 and "acts as bob, not ada" in err
    code, _, err = cli(home, "alert", "list", env={"METROSIGHT_TOKEN": "mst_forged"})
    assert code != 0 and "not a valid API token" in err
    assert actions(home)[-1] == ("bob", "alert.list")


def test_the_first_admin_needs_no_credential_but_sets_a_password(tmp_path):
    home = tmp_path / "home"
    code, _, err = cli(home, "user", "add", "root", "-r", "admin", "--no-password")
    assert code != 0 and "needs a password" in err
    pw = password_of("root")
    code, _, err = cli(home, "user", "add", "root", "-r", "admin", input=f"{pw}\n{pw}\n", env=NO_CREDENTIAL)
    assert code == 0, err
    # the second user is added by the authenticated admin; a machine user may have no password
    assert cli(home, "user", "add", "mallory", "-r", "admin", env=NO_CREDENTIAL, input="x\nx\n")[0] != 0
    assert cli(home, "--as", "root", "user", "add", "monitor", "-r", "viewer", "--no-password")[0] == 0
    code, _, err = cli(home, "--as", "monitor", "alert", "list", env={"METROSIGHT_PASSWORD": ""})
    assert code != 0 and "wrong password" in err
    assert [n for n, _r, _d in Store.for_home(home).users.all()] == ["monitor", "root"]


def test_an_installation_from_before_passwords_sets_its_admins_password_first(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    store = Store.for_home(home)
    store.users.add("old-admin", ["admin"], None)  # users made before the CLI asked for credentials
    store.users.add("old-op", ["operator"], store.users.actor("old-admin"))
    assert cli(home, "user", "password", "old-op")[0] != 0  # not an admin: refused
    assert cli(home, "user", "password", "old-admin")[0] == 0
    assert cli(home, "user", "password", "old-op", env=NO_CREDENTIAL)[0] != 0  # now a credential is needed
    assert cli(home, "--as", "old-admin", "user", "password", "old-op")[0] == 0
    code, out, _ = cli(home, "--as", "old-admin", "audit", "show", "--json")
    acts = [(x["actor"], x["action"], x["target"]) for x in json_lines(out)]
    assert ("old-admin", "user.password", "old-admin") in acts and ("old-admin", "user.password", "old-op") in acts
