"""One rule for names people type and for camera ids (core/names.py), and media files that never take a raw id."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from metrosight.config.home import media_file
from metrosight.core.names import (
    IDENTIFIER_MAX,
    InvalidInput,
    find_lookalike,
    human_name,
    identifier,
    identifiers,
    looks_alike,
    same_name,
)

NFC = "José Núñez"
NFD = unicodedata.normalize("NFD", NFC)


def test_an_nfd_name_a_trailing_space_and_doubled_spaces_all_store_as_the_typed_nfc_name():
    assert NFD != NFC
    for raw in (NFD, NFC + " ", "  José   Núñez\t", NFD + "\u00a0"):
        assert human_name(raw) == NFC
    assert same_name(NFD, NFC)


@pytest.mark.parametrize(
    "raw, why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a/b", "'/'"),
        ("a\\b", "backslash"),
        ("Eve\x00", "NUL"),
        ("Eve\u200b", "invisible"),
        ("x" * 200, "longer than"),
    ],
)
def test_unusable_names_are_refused_with_the_reason(raw, why):
    with pytest.raises(InvalidInput) as info:
        human_name(raw, "user name")
    assert (why if why != "backslash" else "'\\\\'") in str(info.value)


@pytest.mark.parametrize(
    "a, b",
    [
        ("Anna", "Аnnа"),  # Cyrillic А and а
        ("Pavel", "Pаvel"),  # one Cyrillic а
        ("ALICE", "alice"),  # case
        ("ﬁona", "fiona"),  # compatibility ligature (NFKC)
        ("Ivan", "lvan"),  # capital I and small L
        ("Olga", "0lga"),  # digit zero and capital O
        ("José Núñez", "Jоsé Núñez"),  # Cyrillic о inside an accented name
    ],
)
def test_look_alike_names_are_found(a, b):
    assert looks_alike(a, b)
    assert find_lookalike(b, ["Someone", a]) == a


@pytest.mark.parametrize("a, b", [("Ali", "All"), ("Jose Nunez", NFC), ("Pavel", "Petr"), ("Anna", "Anne")])
def test_different_names_are_not_look_alikes(a, b):
    assert not looks_alike(a, b)
    assert find_lookalike(b, [a]) is None


def test_the_same_name_in_another_unicode_form_is_the_same_name_not_a_look_alike():
    assert find_lookalike(NFC, [NFD]) is None  # it *is* that entry: found by lookups, not refused


@pytest.mark.parametrize(
    "raw", ["platform-1", "red:platform 1", "Платформа 1", "cam_2.b", " cam 3 ", "x" * IDENTIFIER_MAX]
)
def test_camera_ids_with_spaces_and_any_script_are_accepted(raw):
    assert identifier(raw) == " ".join(unicodedata.normalize("NFC", raw).split())


@pytest.mark.parametrize(
    "raw, why",
    [
        ("../../../x", "starts with '.'"),
        ("../x", "starts with '.'"),
        ("a/b", "'/'"),
        ("red/platform 1", "'/'"),
        ("/etc/passwd", "'/'"),
        ("C:\\x", "'\\\\'"),
        ("a\x00b", "NUL"),
        ("a,b", "','"),
        (".hidden", "starts with '.'"),
        ("", "empty"),
        ("x" * (IDENTIFIER_MAX + 1), "longer than"),
        ("cam\u202e1", "invisible"),
    ],
)
def test_hostile_camera_ids_are_refused_naming_the_character(raw, why):
    with pytest.raises(InvalidInput) as info:
        identifier(raw, "camera id")
    assert why in str(info.value)


def test_a_camera_list_is_checked_item_by_item():
    assert identifiers("cam-1, cam-2,,cam-1") == ("cam-1", "cam-2")
    with pytest.raises(InvalidInput, match="'/'"):
        identifiers("cam-1,a/b")


@pytest.mark.parametrize(
    "camera", ["../../../x", "a/b", "/abs/path", "a\x00b", "x" * 500, "Платформа 1", "red/platform 1", "..", "."]
)
def test_media_files_stay_inside_the_media_folder_whatever_the_camera_id(tmp_path, camera):
    media = tmp_path / "home" / "media"
    target = media_file(media, "alerts", camera, f"{camera}:scope:12.0", ".jpg.enc")
    assert target.resolve().is_relative_to(media.resolve())
    assert target.parent.is_dir() and target.parent.parent == media.resolve() / "alerts"
    assert "/" not in target.name and camera not in target.relative_to(media.resolve()).parts
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]  # nothing created beside the home


def test_two_cameras_and_two_events_never_share_a_file(tmp_path):
    a = media_file(tmp_path, "alerts", "cam 1", "cam 1:s:1.0", ".jpg")
    b = media_file(tmp_path, "alerts", "cam_1", "cam_1:s:1.0", ".jpg")
    c = media_file(tmp_path, "alerts", "cam 1", "cam 1:s:2.0", ".jpg")
    assert len({a, b, c}) == 3 and a.parent == c.parent != b.parent
    assert isinstance(a, Path)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_either_refused_or_a_stable_nfc_name(raw):
    try:
        name = human_name(raw)
    except InvalidInput:
        return
    assert human_name(name) == name == unicodedata.normalize("NFC", name) == name.strip()
    assert "/" not in name and "  " not in name and looks_alike(name, raw.strip())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_accepted_camera_id_is_a_single_safe_path_part(raw):
    try:
        ident = identifier(raw)
    except InvalidInput:
        return
    assert identifier(ident) == ident
    assert "/" not in ident and "\\" not in ident and "\x00" not in ident and "," not in ident
    assert ident not in (".", "..") and not ident.startswith(".") and 0 < len(ident) <= IDENTIFIER_MAX


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_media_files_stay_inside_the_media_folder_for_any_id(tmp_path_factory, camera, key):
    media = tmp_path_factory.mktemp("m") / "media"
    target = media_file(media, "events", camera, key, ".jpg")
    assert target.resolve().parent.parent == media.resolve() / "events"
