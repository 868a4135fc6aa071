"""What a ``metrosight doctor`` check reports: a name, a status (ok, warn, fail, skip), what was found and what to
do; a report of all checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``detail`` says what was found, ``fix`` what to do (warn/fail), ``data`` the figures."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line: ``[fail] name: detail — fix``."""
        return f"[{self.status.value}] {self.name}: {self.detail}" + (f" — {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True, slots=True)
class Report:
    """All checks; ``ok`` when none failed (warnings do not fail the doctor)."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)


def guard(name: str, fn: Callable[[], Check]) -> Check:
    """Run one check; an unexpected error is that check's failure, never the doctor's crash."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported as the check's result, in one line
        return Check(
            name,
            Status.FAIL,
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "report this with `metrosight doctor --json`",
        )
