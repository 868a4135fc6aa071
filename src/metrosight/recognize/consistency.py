"""Do the photos of one enrolment show one person? The check that keeps a mixed-up folder from becoming a chimera.

The photos given together for one entry (one ``enroll --subject X a.jpg b.jpg``, one ``--from-dir`` sub-folder, one
API upload) become one template, and photos added to an enrolled person (``--person ID``, or more photos of an
entry) join that person's templates. A photo of somebody else among them would make an entry that matches either
person. :func:`disagreement` finds a photo that is *clearly another person*: its descriptor is further from another
photo (or from every template of the person it joins) than two photos of one person essentially ever are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Two enrolment descriptors of one person fall below this cosine in at most about 0.1 % of cases: a photo below it
#: against another photo of the same enrolment (or against every template of the person it joins) is clearly
#: another person, and the enrolment is refused. Measured by ``bench/enrol_consistency.py`` on LFW fold 1 through
#: enrolment's own face step (default detector, embedder with mirror fusion, photo limits; 766 photos kept): the
#: people at even positions chose it (the lower of the counted 0.1 % bound, 0.88, and the 0.1 % quantile of a
#: log-normal fitted to their genuine distances, 0.876, rounded down); on the people at odd positions it refuses 0 of
#: 357 genuine pairs (lowest 0.900) and catches 80.1 % of 69,021 impostor pairs (78.9 % of pairs.txt's). The
#: match threshold (0.930) is above it: a pair between the two is let through, at worst a look-alike.
OTHER_PERSON_BELOW = 0.87


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Photos of one enrolment that are clearly not one person.

    Attributes:
        odd: the labels of the photos that disagree with the most others (both, when two photos disagree).
        pairs: each disagreeing pair as ``(label, other label or "person N's templates", cosine)``, lowest first.
    """

    odd: tuple[str, ...]
    pairs: tuple[tuple[str, str, float], ...]
    joins: str | None = None  #: the person joined (``person 3``), when a photo disagrees with their templates

    def message(self, subject: str) -> str:
        """One line for the operator: which photos, their scores, and what to do."""
        shown = ", ".join(f"{a} vs {b}: cosine {c:.2f}" for a, b, c in self.pairs[:5])
        more = f" (+{len(self.pairs) - 5} more)" if len(self.pairs) > 5 else ""
        odd = " and ".join(self.odd)
        check = f", or check that they are {self.joins}" if self.joins else ""
        return (
            f"the photos are not all of one person ({shown}{more}; two photos of one person score at least "
            f"{OTHER_PERSON_BELOW:.2f}): nothing of {subject!r} was stored; remove {odd} if it is not {subject}, or "
            f"enrol each person separately{check}"
        )


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def disagreement(
    descriptors: Sequence[np.ndarray],
    labels: Sequence[str],
    existing: np.ndarray | None = None,
    existing_label: str = "the person",
    bound: float = OTHER_PERSON_BELOW,
) -> Disagreement | None:
    """The photos among ``descriptors`` that are clearly another person, or ``None`` when they agree.

    Args:
        descriptors: one descriptor per photo, each ``(D,)`` (any length; compared by cosine).
        labels: the photos' labels, in the same order.
        existing: templates ``(M, D)`` of the person the photos join (``None`` or empty: a new person); a photo
            disagrees with them when it is below ``bound`` against every one of them.
        existing_label: how that person is named in the message (``person 3``).
        bound: the cosine under which two descriptors are clearly two people (:data:`OTHER_PERSON_BELOW`).
    """
    if not descriptors:
        return None
    d = _unit(np.stack([np.asarray(x, dtype=np.float64).ravel() for x in descriptors]))
    cos = d @ d.T
    pairs: list[tuple[str, str, float]] = []
    against = np.zeros(len(d), dtype=int)
    for i in range(len(d)):
        for j in range(i + 1, len(d)):
            if cos[i, j] < bound:
                pairs.append((labels[i], labels[j], float(cos[i, j])))
                against[i] += 1
                against[j] += 1
    if existing is not None and len(existing):
        best = (d @ _unit(existing).T).max(axis=1)
        for k in np.flatnonzero(best < bound).tolist():
            pairs.append((labels[k], f"{existing_label}'s templates", float(best[k])))
            against[k] += len(d)  # the person enrolled before outweighs the photos given now
    if not pairs:
        return None
    top = int(against.max())
    odd = tuple(labels[i] for i in range(len(d)) if against[i] == top)
    joins = existing_label if any(b == f"{existing_label}'s templates" for _, b, _ in pairs) else None
    return Disagreement(odd, tuple(sorted(pairs, key=lambda p: p[2])), joins)


@dataclass(frozen=True, slots=True)
class CloserFace:
    """Another face of a photo looks more like the entry's other photos than the face taken as the subject's.

    Attributes:
        taken: the number of the face taken (1 = leftmost); ``taken_cosine`` its best cosine to the references.
        other: the number of the other face; ``other_cosine`` its best cosine to the references.
    """

    taken: int
    taken_cosine: float
    other: int
    other_cosine: float

    def message(self, label: str, subject: str) -> str:
        """One line for the operator: which photo, which faces, their scores, and what to do."""
        return (
            f"face {self.taken} of {label} was taken as {subject}'s, but its face {self.other} is more like the "
            f"entry's other photos (cosine {self.other_cosine:.2f} against {self.taken_cosine:.2f}): nothing of "
            f"{subject!r} was stored; enrol that photo on its own choosing the subject's face (--face N; face=N in "
            "the API)"
        )


def closer_face(
    taken: tuple[int, np.ndarray], others: Sequence[tuple[int, np.ndarray]], references: np.ndarray | None
) -> CloserFace | None:
    """Whether another face of a photo is more like ``references`` than the face taken from it (the dominance rule
    took a bystander: the subject is elsewhere in the photo), or ``None``.

    Args:
        taken: ``(number, descriptor (D,))`` of the face taken as the subject's.
        others: the photo's other usable faces, ``(number, descriptor (D,))``.
        references: ``(M, D)`` descriptors of the entry's other photos and the templates of the person it joins
            (``None`` or empty: nothing to compare with).
    """
    if references is None or not len(references) or not others:
        return None
    ref = _unit(references)
    best_taken = float((_unit(taken[1]) @ ref.T).max())
    scored = [(float((_unit(d) @ ref.T).max()), n) for n, d in others]
    best_other, number = max(scored)
    if best_other <= best_taken:
        return None
    return CloserFace(taken[0], best_taken, number, best_other)
