"""Governed state changes as atomic transitions: the one place that moves an entry or an alert between states.

Every transition (approve, revoke, expire, add a template, confirm, reject) runs inside one write transaction of
the store (:meth:`metrosight.store.db.Sessions.begin`) and is a *compare-and-set*: the row is locked first
(``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the write transaction already holds the database's write lock,
``BEGIN IMMEDIATE``), the rule is checked against what is stored, and the change is an ``UPDATE … WHERE`` the
state still is the one the rule was checked against, whose row count is checked. Two people acting on the same
entry or alert at the same moment are therefore applied one after the other, each seeing the other's result: a
rejection is never overwritten, a revoked or expired entry never comes back, two confirmations always count.

The rules themselves are pure functions in :mod:`metrosight.policy.rules` (``can_approve``, ``alert_status``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from metrosight.policy.rules import PolicyError
from metrosight.store.models import AlertRecord, AlertReview, Subject, Template

TERMINAL_ENTRY = ("revoked", "expired")  # an entry never leaves these states
LIVE_ENTRY = ("pending", "active")
DECIDED_ALERT = ("actionable", "rejected")


class Changed(PolicyError):
    """The row changed between the check and the update (a concurrent transition won); nothing was written."""


def locked(s: Session, model: type, row_id: int) -> Any:
    """The row ``row_id`` of ``model``, read afresh and locked until the transaction ends (None if it is gone)."""
    return s.get(model, row_id, with_for_update=True, populate_existing=True)


def compare_and_set(s: Session, model: type, row_id: int, *expected: ColumnElement[bool], **values: Any) -> None:
    """``UPDATE model SET values WHERE id = row_id AND expected…``.

    Raises:
        Changed: no row matched (the state is no longer the expected one).
    """
    stmt = update(model).where(model.id == row_id, *expected).values(**values)  # type: ignore[attr-defined]
    res = s.execute(stmt.execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Changed(f"{model.__tablename__} {row_id} was changed by someone else meanwhile; look again and retry")  # type: ignore[attr-defined]
    s.expire_all()  # what the session holds may be stale now: read it again from the row


# -- entries ----------------------------------------------------------------------------------------------------
def lock_entry(s: Session, entry_id: int) -> Subject:
    e = locked(s, Subject, entry_id)
    if e is None:
        raise Changed(f"entry {entry_id} no longer exists")
    return e


def contributors(s: Session, entry: Subject) -> frozenset[str]:
    """Who contributed the entry: its creator and everyone who added one of its templates."""
    added = s.scalars(select(Template.added_by).where(Template.subject_id == entry.id).distinct())
    return frozenset({n for n in added if n} | ({entry.created_by} if entry.created_by else set()))


def set_entry(
    s: Session, entry: Subject, expected_status: Iterable[str] | str, *expected: ColumnElement[bool], **values: Any
) -> None:
    """Move ``entry`` on from one of ``expected_status`` (and the ``approved_by`` it was checked with, and any further
    ``expected`` conditions). Revoked and expired entries never move.

    Raises:
        Changed: the entry is no longer in that state.
    """
    states = (expected_status,) if isinstance(expected_status, str) else tuple(expected_status)
    states = tuple(st for st in states if st not in TERMINAL_ENTRY)
    who = Subject.approved_by.is_(None) if entry.approved_by is None else Subject.approved_by == entry.approved_by
    compare_and_set(s, Subject, entry.id, Subject.status.in_(states), who, *expected, **values)


def release_templates(s: Session, entry_id: int) -> int:
    """Held templates of an entry become matchable (its approval). Returns how many."""
    res = s.execute(update(Template).where(Template.subject_id == entry_id, Template.held.is_(True)).values(held=False))
    return res.rowcount or 0  # type: ignore[attr-defined]


# -- alerts -----------------------------------------------------------------------------------------------------------
def lock_alert(s: Session, alert_id: int) -> AlertRecord | None:
    return locked(s, AlertRecord, alert_id)


def reviews_of(s: Session, alert_id: int) -> list[AlertReview]:
    return list(s.scalars(select(AlertReview).where(AlertReview.alert_id == alert_id).order_by(AlertReview.id)))


def set_alert_status(s: Session, alert: AlertRecord, status: str) -> None:
    """Move ``alert`` on from the status it was checked with (never out of a decided status)."""
    if alert.status in DECIDED_ALERT:
        raise Changed(f"alert {alert.id} is already {alert.status}")
    compare_and_set(s, AlertRecord, alert.id, AlertRecord.status == alert.status, status=status)
