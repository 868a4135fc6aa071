"""Evaluation data sets: folder-per-person photo sets, LFW pair lists, and open-set splits of them.

A *folder-per-person* set is ``DIR/<person>/<photo>`` (LFW, AT&T ``s1``…, dlib_johns, an operator's own data). The
open-set split follows the protocol NIST uses for 1:N search with one photo per person (FRVT/FRTE 1:N): people with
enough photos are enrolled (their first ``per_person`` photos, in name order) and searched with their other photos
(*mated* probes); people with too few photos are never enrolled and all their photos are *non-mated* probes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from metrosight.ingest.images import photos_in


class DatasetError(ValueError):
    """A data folder or list file is missing or malformed; the message names it."""


def _natural(s: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def people_folders(root: Path, include: str | None = None) -> dict[str, list[Path]]:
    """The photos of each person of a folder-per-person set, in natural name order.

    Args:
        root: the folder holding one sub-folder per person.
        include: optional regular expression a person folder's name must fully match (e.g. ``s([1-9]|1[0-9]|20)``
            for AT&T ``s1``–``s20``).

    Raises:
        DatasetError: ``root`` is not a folder or holds no person folder with photos.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected one sub-folder of photos per person)")
    pattern = re.compile(include) if include else None
    out: dict[str, list[Path]] = {}
    for d in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: _natural(p.name)):
        if pattern is not None and not pattern.fullmatch(d.name):
            continue
        photos = sorted(photos_in(d), key=lambda p: _natural(p.name))
        if photos:
            out[d.name] = photos
    if not out:
        raise DatasetError(f"{root}: no person folders with photos" + (f" matching {include!r}" if include else ""))
    return out


@dataclass(frozen=True, slots=True)
class OpenSetSplit:
    """An open-set 1:N protocol.

    Attributes:
        gallery: enrolment photos per enrolled person.
        mated: ``(photo, person)`` probes of enrolled people (photos not used for enrolment).
        non_mated: ``(photo, person)`` probes of people who are not enrolled.
    """

    gallery: dict[str, list[Path]]
    mated: list[tuple[Path, str]]
    non_mated: list[tuple[Path, str]]

    def all_items(self) -> list[tuple[Path, str]]:
        """Every photo once, with its person."""
        seen: dict[Path, str] = {}
        for person, photos in self.gallery.items():
            for p in photos:
                seen[p] = person
        for p, person in self.mated + self.non_mated:
            seen[p] = person
        return list(seen.items())


def open_set_split(people: dict[str, list[Path]], per_person: int = 1, probes_from: int | None = None) -> OpenSetSplit:
    """Split a folder-per-person set: people with more than ``probes_from`` photos are enrolled with their first
    ``per_person`` and probed with their photos from index ``probes_from`` on; everyone else is non-mated.

    Args:
        people: photos per person, in order.
        per_person: enrolment photos per person.
        probes_from: first photo index used as a probe (default ``per_person``). Giving the same value to splits
            with different ``per_person`` compares galleries of 1, 2, 3… photos on the very same probes.

    Raises:
        DatasetError: nobody has enough photos to be enrolled and probed.
    """
    if per_person < 1:
        raise DatasetError(f"per_person must be >= 1, got {per_person}")
    start = per_person if probes_from is None else probes_from
    if start < per_person:
        raise DatasetError(f"probes_from ({start}) must be >= per_person ({per_person})")
    gallery: dict[str, list[Path]] = {}
    mated: list[tuple[Path, str]] = []
    non_mated: list[tuple[Path, str]] = []
    for person, photos in people.items():
        if len(photos) > start:
            gallery[person] = photos[:per_person]
            mated += [(p, person) for p in photos[start:]]
        else:
            non_mated += [(p, person) for p in photos]
    if not gallery:
        raise DatasetError(f"no person has more than {per_person} photo(s): nothing to enrol and search for")
    return OpenSetSplit(gallery, mated, non_mated)


def people_split(people: dict[str, list[Path]], per_person: int, non_mated_people: list[str]) -> OpenSetSplit:
    """Split with an explicit set of non-enrolled people (all their photos non-mated); the others are enrolled with
    their first ``per_person`` photos and probed with the rest (people with no photo left to probe are dropped).

    Raises:
        DatasetError: a named person is unknown, or nobody is left to enrol.
    """
    unknown = [p for p in non_mated_people if p not in people]
    if unknown:
        raise DatasetError(f"unknown person folder(s): {', '.join(unknown)}")
    out_people = set(non_mated_people)
    gallery: dict[str, list[Path]] = {}
    mated: list[tuple[Path, str]] = []
    non_mated: list[tuple[Path, str]] = []
    for person, photos in people.items():
        if person in out_people:
            non_mated += [(p, person) for p in photos]
        elif len(photos) > per_person:
            gallery[person] = photos[:per_person]
            mated += [(p, person) for p in photos[per_person:]]
    if not gallery:
        raise DatasetError(f"no enrolled person has more than {per_person} photo(s)")
    return OpenSetSplit(gallery, mated, non_mated)


@dataclass(frozen=True, slots=True)
class Pair:
    """One labelled pair of the LFW protocol."""

    a: Path
    b: Path
    same: bool
    fold: int


def lfw_path(images: Path, person: str, number: int) -> Path:
    """``images/<person>/<person>_<NNNN>.jpg``."""
    return Path(images) / person / f"{person}_{number:04d}.jpg"


def load_pairs(pairs_file: Path, images: Path) -> list[Pair]:
    """Read an LFW ``pairs.txt``: a header ``<folds> <n>``, then per fold ``n`` matched pairs
    (``name i j``) and ``n`` mismatched pairs (``name1 i name2 j``).

    Raises:
        DatasetError: the file is missing or malformed, or names a photo that does not exist.
    """
    pairs_file = Path(pairs_file)
    if not pairs_file.is_file():
        raise DatasetError(f"{pairs_file}: pairs file not found")
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    try:
        folds, n = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise DatasetError(f"{pairs_file}: first line must be '<folds> <pairs per class>'") from None
    body = lines[1:]
    if len(body) < folds * 2 * n:
        raise DatasetError(f"{pairs_file}: header promises {folds * 2 * n} pairs, file has {len(body)}")
    out: list[Pair] = []
    for k, row in enumerate(body[: folds * 2 * n]):
        fold = k // (2 * n)
        try:
            if len(row) == 3:
                pair = Pair(lfw_path(images, row[0], int(row[1])), lfw_path(images, row[0], int(row[2])), True, fold)
            elif len(row) == 4:
                pair = Pair(lfw_path(images, row[0], int(row[1])), lfw_path(images, row[2], int(row[3])), False, fold)
            else:
                raise ValueError
        except ValueError:
            raise DatasetError(f"{pairs_file}: line {k + 2} is not a pair: {' '.join(row)!r}") from None
        for p in (pair.a, pair.b):
            if not p.is_file():
                raise DatasetError(f"{pairs_file}: line {k + 2} names a photo that does not exist: {p}")
        out.append(pair)
    return out
