"""Is a newly enrolled face a person enrolled before? Pure decision logic for enrolment (no I/O).

A new entry joins an existing person only when both its name (compared by its case-folded look-alike key,
:func:`metrosight.core.names.name_keys`: Unicode form, case, spacing and look-alike letters of another script do
not count) and its face (the matcher's decision score at the match threshold) agree with that person,
and the operator has not recorded the two as different people. A face that matches someone under another name, or
a name whose face does not match, is never linked silently: the operator gets a warning and decides
(``enroll --person ID``, ``person link``, ``person distinct``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrosight.core.names import name_keys
from metrosight.recognize.gallery import Matcher


def name_key(name: str) -> str:
    """A name as compared for "same person": its case-folded look-alike key (see
    :func:`metrosight.core.names.name_keys`)."""
    return name_keys(name)[1]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An enrolled person a new face resembles: their best entry's decision score and every name they carry."""

    person_id: int
    person_name: str
    score: float
    names: tuple[str, ...]
    watchlists: tuple[str, ...]

    def describe(self) -> str:
        lists = ", ".join(self.watchlists)
        return f"person {self.person_id} ({self.person_name}, on {lists}) at score {self.score:.3f}"


def candidates(matcher: Matcher, descriptor: np.ndarray) -> list[Candidate]:
    """Every person of ``matcher``'s gallery whose best entry reaches the matcher's threshold, best first."""
    if len(matcher.gallery) == 0:
        return []
    _, dec = matcher.decision_scores(descriptor)
    best: dict[int, float] = {}
    for key, score in zip(matcher.gallery.person_keys.tolist(), dec.tolist(), strict=True):
        best[key] = max(score, best.get(key, -np.inf))
    out = []
    for key, score in best.items():
        if score < matcher.threshold or key < 0:
            continue
        rows = [e for e in matcher.gallery.entries if e.person_key == key]
        out.append(
            Candidate(
                key,
                rows[0].person_name or rows[0].subject_name,
                float(score),
                tuple(dict.fromkeys(e.subject_name for e in rows)),
                tuple(dict.fromkeys(e.watchlist for e in rows)),
            )
        )
    return sorted(out, key=lambda c: -c.score)


@dataclass(frozen=True, slots=True)
class PersonDecision:
    """Where a new entry goes: ``person_id`` (None: a new person), why (for the audit log), and what the operator
    should look at."""

    person_id: int | None
    reason: str | None
    warnings: tuple[str, ...]


def decide(
    name: str,
    found: list[Candidate],
    same_name_persons: dict[int, str],
    distinct: set[tuple[int, int]],
    own_person: int | None = None,
) -> PersonDecision:
    """Decide the person of a new entry named ``name`` whose face resembles the persons ``found``.

    Args:
        name: the new entry's name.
        found: persons whose face matches (from :func:`candidates`).
        same_name_persons: persons that carry this name already (by :func:`name_key`), id → person name.
        distinct: pairs recorded as different people (``(smaller, larger)``).
        own_person: the entry's person when it exists already (a photo added to it): then nothing is linked,
            only look-alikes among other persons are reported.
    """

    def is_distinct(a: int, b: int | None) -> bool:
        return b is not None and ((a, b) if a < b else (b, a)) in distinct

    warnings: list[str] = []
    if own_person is not None:
        for c in found:
            if c.person_id != own_person and not is_distinct(c.person_id, own_person):
                warnings.append(
                    f"this face also matches {c.describe()}: if it is the same person, run `metrosight person link "
                    f"{own_person} {c.person_id}`; if not, `metrosight person distinct {own_person} {c.person_id}`"
                )
        return PersonDecision(own_person, None, tuple(warnings))
    same = [c for c in found if c.person_id in same_name_persons]
    if same:
        c = same[0]
        for other in found:
            if other.person_id != c.person_id and not is_distinct(other.person_id, c.person_id):
                warnings.append(f"this face also matches {other.describe()}")
        return PersonDecision(
            c.person_id, f"same name and face as person {c.person_id} (score {c.score:.3f})", tuple(warnings)
        )
    for c in found:
        warnings.append(
            f"this face matches {c.describe()} under another name: if it is the same person, run `metrosight "
            f"person link {c.person_id} NEW_PERSON` (or enrol with --person {c.person_id}); if not, `metrosight "
            f"person distinct {c.person_id} NEW_PERSON`"
        )
    for pid, pname in same_name_persons.items():
        if all(c.person_id != pid for c in found):
            warnings.append(
                f"person {pid} is also named {pname!r} but this face does not match theirs: a new person is "
                f"recorded; if it is the same person, run `metrosight person link {pid} NEW_PERSON`"
            )
    return PersonDecision(None, None, tuple(warnings))
