"""Red team of the name, camera id and date rules (core/names.py, core/when.py): inputs a hostile or careless user
types, and legitimate names of other scripts that must pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metrosight.cli import app
from metrosight.config.model import Settings
from metrosight.core.names import InvalidInput, distinct_identifiers, find_lookalike, human_name, identifier
from metrosight.core.when import parse_when, zone
from metrosight.policy.rules import in_scope

INVISIBLE = {
    "combining grapheme joiner": "b\u034fob",
    "variation selector 16": "bob\ufe0f",
    "variation selector 1": "bo\ufe00b",
    "Hangul filler": "\u3164",
    "Hangul choseong filler": "\u115f",
    "halfwidth Hangul filler": "\uffa0",
    "blank Braille pattern": "\u2800",
    "Mongolian free variation selector": "bob\u180b",
    "Khmer inherent vowel": "bo\u17b4b",
    "zero-width joiner between Latin letters": "b\u200dob",
    "zero-width non-joiner at the end": "bob\u200c",
}


@pytest.mark.parametrize("raw", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_names_and_camera_ids_with_characters_drawn_as_nothing_are_refused(raw):
    """`b͏ob` (a combining grapheme joiner) or `bob️` (a variation selector) are shown as `bob` in every table:
    as a second user they would pass for bob before an approver."""
    with pytest.raises(InvalidInput, match="invisible"):
        human_name(raw, "user name")
    with pytest.raises(InvalidInput, match="invisible"):
        identifier("cam-" + raw, "camera id")


def test_an_invisible_character_in_a_stored_name_does_not_hide_a_look_alike():
    """Rows stored before the rule may hold one: the look-alike keys ignore what is drawn as nothing."""
    assert find_lookalike("bob", ["b\u034fob"]) == "b\u034fob"
    assert find_lookalike("bob", ["bob\ufe0f"]) == "bob\ufe0f"
    assert find_lookalike("علیزاده", ["علی\u200cزاده"]) == "علی\u200cزاده"


@pytest.mark.parametrize(
    "raw, why",
    [
        ("\u0301", "starts with a combining mark"),
        ("\u0301Bob", "starts with a combining mark"),
        ("Bo" + "\u0300\u0301\u0302\u0303\u0304\u0306", "more than 4 combining marks"),
        ("Bob" + "\u0301" * 3, "repeats the combining mark"),
        ("Z" + "\u0336\u0337\u0338\u0335\u0334\u0333" * 8, "combining marks"),  # "zalgo" text over a table
    ],
)
def test_stacks_of_combining_marks_and_marks_with_no_letter_are_refused(raw, why):
    with pytest.raises(InvalidInput, match=why):
        human_name(raw)
    with pytest.raises(InvalidInput, match=why):
        identifier(raw)


@pytest.mark.parametrize(
    "name",
    [
        "José Núñez",
        "Иван Петров",
        "محمد عبد الله",
        "李小龙",
        "김민준",
        "Nguyễn Thị Minh Khai",
        "Łukasz Żółć",
        "İsmail Ilıcak",
        "नमस्ते शर्मा",
        "ผู้ใหญ่ บ้าน",
        "བཀྲ་ཤིས",
        "O'Brien",
        "Jean-Luc",
        "Мария-Анна",
        "ǅemal",
        "علی\u200cزاده",  # Persian: the zero-width non-joiner is part of the spelling
        "क्\u200dष",  # Devanagari: a zero-width joiner after a virama
        "ශ්\u200dරී",  # Sinhala
    ],
)
def test_legitimate_names_of_other_scripts_are_kept(name):
    assert human_name(name) == name


@pytest.mark.parametrize(
    "ids, why",
    [
        (["cam-1", "cam-1"], "must be unique"),
        (["Cam-1", "cam-1"], "look alike"),
        (["cam-1", "саm-1"], "look alike"),  # Cyrillic с and а
        (["Platform I", "Platform l"], "look alike"),  # capital I, small L
        (["ｃａｍ-1", "cam-1"], "look alike"),  # full-width
    ],
)
def test_two_cameras_of_one_configuration_cannot_look_alike(ids, why):
    with pytest.raises(InvalidInput, match=why):
        distinct_identifiers(ids)
    cams = [{"id": i, "source": f"{n}.mp4"} for n, i in enumerate(ids)]
    with pytest.raises(ValueError, match=why):
        Settings.model_validate({"cameras": cams})


def test_config_check_refuses_look_alike_camera_ids_naming_the_key(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("cameras: [{id: Cam-1, source: a.mp4}, {id: cam-1, source: b.mp4}]\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    assert r.exit_code == 2 and "cameras" in r.stdout + r.stderr and "look alike" in r.stdout + r.stderr
    f.write_text("cameras: [{id: cam-1, source: a.mp4}]\nanalytics: {cameras: {CAM-1: {}}}\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    assert r.exit_code == 2 and "'CAM-1' is the camera 'cam-1'" in r.stdout + r.stderr


def test_a_window_or_entry_scoped_to_a_camera_typed_in_another_case_covers_that_camera():
    """A no-identification window typed `--cameras CAM-1` must switch matching off on camera `cam-1`, not be
    silently ignored (which would identify people where it was forbidden)."""
    assert in_scope({"cameras": ["CAM-1"], "lines": []}, "cam-1", None)
    assert in_scope({"cameras": ["саm-1"], "lines": []}, "cam-1", None)  # Cyrillic
    assert in_scope({"cameras": [], "lines": ["Red"]}, "cam-9", "red")
    assert not in_scope({"cameras": ["cam-2"], "lines": []}, "cam-1", "red")


def test_run_camera_typed_in_another_case_is_the_configured_camera_with_its_line():
    s = Settings.model_validate({"cameras": [{"id": "cam-1", "source": "a.mp4", "line": "red"}]})
    assert s.camera("CAM-1") is not None and s.camera("CAM-1").line == "red"
    assert s.camera("cam-2") is None


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MSK = zone("Europe/Moscow")


@pytest.mark.parametrize("typed", ["20261130", "2026-W49-1"])  # basic ISO form; ISO week date (Monday 30 Nov)
def test_every_iso_form_of_a_date_alone_means_the_whole_day(typed):
    """`--expires 20261130` was read as 00:00 on the 30th (losing the order's last day) while `2026-11-30` meant
    its end."""
    assert parse_when(typed, NOW, MSK, end=True) == parse_when("2026-11-30", NOW, MSK, end=True)
    assert parse_when(typed, NOW, MSK, end=True) == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    assert parse_when(typed, NOW, MSK, end=False) == datetime(2026, 11, 29, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize("typed", ["٣٠d", "３０d", "２０２６-１１-３０"])
def test_digits_of_other_scripts_are_refused_alike(typed):
    """Durations and dates take ASCII digits; before, `٣٠d` was 30 days while `２０２６-１１-３０` was refused."""
    with pytest.raises(InvalidInput, match="cannot read"):
        parse_when(typed, NOW, MSK, end=True)


def test_a_window_until_a_duration_counts_from_its_start(tmp_path: Path):
    """README: `privacy window-add march --from 2026-12-05T10:00 --until 6h` is 10:00–16:00 on 5 December; the
    duration counted from now made it end before it started and the command failed."""
    start = parse_when("2026-12-05T10:00", NOW, MSK, end=False)
    assert parse_when("6h", start, MSK, end=True) - start == timedelta(hours=6)
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    day = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    assert cli(home, "user", "add", "ada", "-r", "admin")[0] == 0
    code, out, err = cli(
        home,
        "--as",
        "ada",
        "privacy",
        "window-add",
        "march",
        "--cameras",
        "cam-1",
        "--from",
        f"{day}T10:00",
        "--until",
        "6h",
        "--reason",
        "lawful assembly",
    )
    assert code == 0, out + err
    assert f"from {day} 10:00" in out and f"until {day} 16:00" in out


# -- what the CLI prints, and free text an approver reads -----------------------------------------------------------


def test_cli_prints_user_text_as_text_not_as_markup_or_terminal_control(tmp_path: Path):
    """`bo[/]b` ended the CLI with rich's MarkupError traceback; `Ivan [red]x` printed `Ivan x` in red; escape
    sequences reached the terminal (ESC[8m hides text, ESC]52 writes the clipboard)."""
    import io

    from rich.table import Table

    from metrosight.console import SafeConsole
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    assert cli(home, "user", "add", "ada", "-r", "admin")[0] == 0
    code, out, err = cli(home, "--as", "ada", "user", "add", "bo[/]b", "-r", "viewer")
    assert code == 2 and "bo[/]b" in err and "Traceback" not in err
    code, out, err = cli(home, "--as", "ada", "user", "add", "Ivan [red]x :smile:", "-r", "viewer")
    assert code == 0 and "added user Ivan [red]x :smile: (viewer)" in out
    buf = io.StringIO()
    console = SafeConsole(file=buf, width=200)  # not a terminal: any ESC left would be the content's
    t = Table("reason")
    t.add_row("lawful \x1b[8mhidden\x1b[0m \x1b]52;c;ZXZpbA==\x07 \u202eesaeler")
    console.print(t)
    console.print("a \x1b[2J b [/] c")
    text = buf.getvalue()
    assert "\x1b" not in text and "\u202e" not in text  # no escape sequence, no bidi override reached the terminal
    assert "\\x1b[8mhidden" in text and "<U+202E>esaeler" in text and "[/] c" in text


@pytest.mark.parametrize(
    "field, value",
    [
        ("--legal-basis", "CPC art. \u202e012"),  # shows as "CPC art. 210" to the approver
        ("--authority", "court\x1b[8m (hidden)"),
        ("--reference", "T-1\u200b"),
    ],
)
def test_an_authorisation_with_controls_is_refused(tmp_path: Path, field, value):
    from metrosight.core.names import free_text
    from metrosight.policy.rules import Authorisation

    with pytest.raises(InvalidInput, match="control or invisible"):
        free_text(value, field)
    args = {"--legal-basis": "a", "--authority": "b", "--reference": "c", field: value}
    auth = Authorisation(args["--legal-basis"], args["--authority"], args["--reference"], NOW + timedelta(days=3))
    with pytest.raises(InvalidInput, match="control or invisible"):
        auth.validate(NOW, 365)


def test_reasons_are_one_line_of_plain_text(tmp_path: Path):
    from metrosight.core.names import free_text
    from tests.integration.helpers import cli

    assert free_text("  order\nwithdrawn\t ", "reason") == "order withdrawn"
    assert free_text("علی\u200cزاده asked", "reason") == "علی\u200cزاده asked"
    home = tmp_path / "home"
    assert cli(home, "user", "add", "ada", "-r", "admin")[0] == 0
    code, out, err = cli(
        home,
        "--as",
        "ada",
        "privacy",
        "window-add",
        "w",
        "--from",
        "0m",
        "--until",
        "1h",
        "--reason",
        "lawful \x1b[8mhidden",
    )
    assert code == 2 and "reason" in err and "U+001B" in err and "Traceback" not in err


def test_users_whose_names_look_alike_count_as_one_person_for_the_two_person_rules():
    """New look-alike users are refused; rows stored before that rule (`bob` and `b͏ob`, `bob` and `ｂｏｂ`) must
    not make one person's second account a second approver or a second confirming operator."""
    from metrosight.policy.rules import Actor, Forbidden, alert_status, can_approve

    for twin in ("ｂｏｂ", "b\u034fob", "Bob"):
        with pytest.raises(Forbidden, match="recorded this entry"):
            can_approve(Actor(twin, frozenset({"approver"})), "bob", "pending", False, None)
        with pytest.raises(Forbidden, match="added a photo"):
            can_approve(Actor(twin, frozenset({"approver"})), "ada", "pending", False, None, ["bob"])
        assert alert_status([("bob", "confirm"), (twin, "confirm")]) == "confirmed_once"
    can_approve(Actor("carol", frozenset({"approver"})), "bob", "pending", False, None)
    assert alert_status([("bob", "confirm"), ("carol", "confirm")]) == "actionable"


def test_a_window_that_is_already_over_is_refused(tmp_path: Path):
    """`--until 2025-12-05` typed for 2026 was "set" and reported, yet never switched matching off."""
    from tests.integration.helpers import cli

    home = tmp_path / "home"
    last_year = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    assert cli(home, "user", "add", "ada", "-r", "admin")[0] == 0
    code, out, err = cli(
        home,
        "--as",
        "ada",
        "privacy",
        "window-add",
        "march",
        "--from",
        f"{last_year}T10:00",
        "--until",
        f"{last_year}T16:00",
        "--reason",
        "lawful assembly",
    )
    assert code == 2 and "ends in the past" in err
    assert "window" not in out


def _analytics(zones: list[str], lines: list[str]) -> dict:
    tri = [[0, 0], [10, 0], [10, 10]]
    return {
        "cameras": [{"id": "cam-1", "source": "a.mp4"}],
        "analytics": {
            "cameras": {
                "cam-1": {
                    "zones": [{"name": z, "polygon": tri} for z in zones],
                    "lines": [{"name": x, "a": [0, 0], "b": [5, 5]} for x in lines],
                }
            }
        },
    }


@pytest.mark.parametrize(
    "zones, lines, why",
    [
        (["gate", "gate"], [], "zone names must be unique"),  # their dwell was merged into one zone
        (["Gate", "gate"], [], "look alike"),
        ([], ["exit", "еxit"], "look alike"),  # Cyrillic е
        (["a/b"], [], "'/'"),
    ],
)
def test_zones_and_counting_lines_of_a_camera_have_distinct_names_under_the_id_rule(zones, lines, why):
    with pytest.raises(ValueError, match=why):
        Settings.model_validate(_analytics(zones, lines))


def test_zones_and_counting_lines_may_be_named_in_any_script_like_camera_ids():
    s = Settings.model_validate(_analytics(["Выход 1", "出口"], ["gate"]))
    assert [z.name for z in s.analytics.cameras["cam-1"].zones] == ["Выход 1", "出口"]


def test_analytics_settings_are_found_for_a_camera_typed_in_another_case():
    """`analytics plot --camera CAM-1` ran with no zones of `cam-1` (an empty plot, no error)."""
    s = Settings.model_validate(_analytics(["gate"], []))
    assert s.analytics.camera("CAM-1") is s.analytics.cameras["cam-1"]
    with pytest.raises(ValueError, match="look alike"):
        Settings.model_validate({"analytics": {"cameras": {"Cam-1": {}, "cam-1": {}}}})


def test_the_machine_zone_follows_a_posix_tz_rule():
    """With `TZ=MSK-3` the machine's clock is Moscow time, yet dates were read in /etc/localtime's zone."""
    import os
    import subprocess
    import sys

    code = (
        "from datetime import UTC, datetime\n"
        "from metrosight.core.when import local_zone, parse_when\n"
        "print(parse_when('2026-11-30', datetime(2026, 11, 29, tzinfo=UTC), local_zone(), end=True).isoformat())\n"
    )
    env = {**os.environ, "TZ": "MSK-3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2026-11-30T21:00:00+00:00"


def test_a_password_with_an_accent_is_the_same_typed_composed_or_decomposed():
    """`Jérôme` typed with a combining accent (macOS pastes, some input methods) did not sign in with the
    password set as `Jérôme` (one character each), and the reverse."""
    import unicodedata

    from argon2 import PasswordHasher

    from metrosight.policy.passwords import check_password, hash_password, new_password_hash

    nfc = "Jérôme a vu quatre éléphants roses"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    for stored in (new_password_hash(nfd, "ada"), hash_password(nfc)):
        assert check_password(stored, nfc) and check_password(stored, nfd)
        assert not check_password(stored, nfc + "!")
    legacy = PasswordHasher().hash(nfd)  # a hash made before passwords were compared in NFC
    assert check_password(legacy, nfd) and check_password(legacy, nfc) is False


@pytest.mark.parametrize("stem", ["../../escaped", "/tmp/x", ".hidden", "a\x00b"])
def test_an_eval_report_name_cannot_leave_the_report_folder(stem):
    from metrosight.eval.study import report_stem
    from metrosight.eval.study_io import EvalError

    with pytest.raises(EvalError):
        report_stem("verify", stem)
    assert report_stem("verify", "lfw fold 1") == "lfw fold 1"
