"""Cross-check of governed state (entry approvals, alert reviews, alarms) against the keyed audit log.

The audit log is keyed and checkpointed (:mod:`metrosight.audit.log`), but the tables it describes are not: whoever
can write the database could insert ``alert_reviews`` rows for made-up operators, set an alert ``actionable``, or set
an entry ``active`` with ``approved_by='bob'``. Every governed transition writes its keyed entry in the same
transaction, so the state those entries describe can be *replayed* from the log and compared with what is stored;
a row the log does not back is a forgery (or a rollback) and is reported.

Replay (:func:`replay`), per entry id: ``entry.create`` (status, urgent) → ``entry.enrol`` (the resulting status; a
photo added to an approved entry sends it back to pending, approval undone) → ``entry.approve`` (active, approved by
its actor) → ``entry.revoke`` / ``entry.expire``; ``watchlist.shred`` revokes every live entry of the watchlist. Per
alert id: the ``(actor, decision)`` of each ``alert.confirm`` / ``alert.reject``, and its alarm: ``alarm.raise``
(new, the policy copied in) → ``alarm.claim`` / ``release`` / ``takeover`` / ``acknowledge`` (state and owner) →
``alarm.escalate``.

Retention purge: the purged entries' replayed state is carried forward inside the keyed ``audit.purge`` entry
(``details["governed"]``, restricted to rows that still exist), and replay starts from it. A log purged before this
existed (a purge entry without ``governed``) leaves state older than its oldest surviving entry unknown: rows
created before that horizon are not checked (the residual risk README's threat model names).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from metrosight.audit.log import ChainEntry
from metrosight.policy.rules import alert_status

REVIEW_ACTIONS = ("alert.confirm", "alert.reject")
_ENTRY_ACTIONS = ("entry.create", "entry.enrol", "entry.approve", "entry.revoke", "entry.expire")
ALARM_ACTIONS = (
    "alarm.raise",
    "alarm.claim",
    "alarm.release",
    "alarm.takeover",
    "alarm.acknowledge",
    "alarm.escalate",
)
GOVERNED_ACTIONS = (*REVIEW_ACTIONS, *_ENTRY_ACTIONS, *ALARM_ACTIONS, "watchlist.shred", "audit.purge")
ENTRY_LOG_ACTIONS = (*_ENTRY_ACTIONS, "watchlist.shred", "audit.purge")  # what an entry's state replays from


@dataclass
class Governed:
    """Governed state as the keyed log tells it.

    Attributes:
        entries: entry id → ``[status, approved_by]``.
        reviews: alert id → ``[[user, "confirm" | "reject"], …]`` in log order.
        shredded: names of shredded watchlists.
        templates: ``"entry id:photo sha256"`` → ``[added_by, held]`` of every template not destroyed.
        horizon: None when the state is complete; else the ISO time of the oldest surviving entry of a log purged
            without carrying its state forward: rows created before it are unknown to the log.
        alarms: alert id → ``[state, owner, escalated, priority, escalate_at, escalate_to]`` of its alarm.
    """

    entries: dict[int, list[Any]] = field(default_factory=dict)
    reviews: dict[int, list[list[str]]] = field(default_factory=dict)
    shredded: set[str] = field(default_factory=set)
    horizon: str | None = None
    templates: dict[str, list[Any]] = field(default_factory=dict)
    alarms: dict[int, list[Any]] = field(default_factory=dict)

    def to_json(self, entry_ids: Iterable[int] | None = None, alert_ids: Iterable[int] | None = None) -> dict:
        """What a purge carries forward (only the ids given, when given: rows that still exist)."""
        keep_e = set(entry_ids) if entry_ids is not None else set(self.entries)
        keep_a = set(alert_ids) if alert_ids is not None else set(self.reviews)
        return {
            "templates": {k: v for k, v in sorted(self.templates.items()) if int(k.split(":", 1)[0]) in keep_e},
            "entries": {str(k): v for k, v in sorted(self.entries.items()) if k in keep_e},
            "reviews": {str(k): v for k, v in sorted(self.reviews.items()) if k in keep_a},
            "shredded": sorted(self.shredded),
            "horizon": self.horizon,
            "alarms": {str(k): v for k, v in sorted(self.alarms.items()) if k in keep_a},
        }

    @classmethod
    def from_json(cls, d: dict) -> Governed:
        return cls(
            {int(k): list(v) for k, v in (d.get("entries") or {}).items()},
            {int(k): [list(r) for r in v] for k, v in (d.get("reviews") or {}).items()},
            set(d.get("shredded") or ()),
            d.get("horizon"),
            {str(k): list(v) for k, v in (d.get("templates") or {}).items()},
            {int(k): list(v) for k, v in (d.get("alarms") or {}).items()},
        )


def _details(e: ChainEntry) -> dict:
    try:
        d = json.loads(e.details)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def replay(entries: Sequence[ChainEntry], upto_seq: int | None = None, first_seq: int | None = None) -> Governed:
    """The governed state the log ``entries`` (a verified chain, oldest first) describes, up to ``upto_seq``.

    ``first_seq``: where the whole log starts, when ``entries`` is only its governed entries (default: the first's).
    """
    g = Governed()
    first_seq = first_seq if first_seq is not None else (entries[0].seq if entries else 1)
    if entries and first_seq != 1:
        start = first_seq - 1
        for e in entries:
            d = _details(e) if e.action == "audit.purge" else {}
            if d.get("through_seq") == start:
                g = (
                    Governed.from_json(d["governed"])
                    if isinstance(d.get("governed"), dict)
                    else Governed(horizon=entries[0].at)
                )
                break
        else:
            g = Governed(horizon=entries[0].at)
    for e in entries:
        if upto_seq is not None and e.seq > upto_seq:
            break
        if e.action not in GOVERNED_ACTIONS or e.action == "audit.purge":
            continue
        d = _details(e)
        if e.action in ALARM_ACTIONS:
            _replay_alarm(g, e, d)
            continue
        if e.action in REVIEW_ACTIONS:
            aid = d.get("alert_id")
            if isinstance(aid, int):
                g.reviews.setdefault(aid, []).append([e.actor, e.action.removeprefix("alert.")])
            continue
        if e.action == "watchlist.shred":
            if e.target:
                g.shredded.add(e.target)
            continue
        eid = d.get("entry_id")
        if not isinstance(eid, int):
            continue
        cur = g.entries.get(eid)
        if e.action == "entry.create":
            g.entries[eid] = [d.get("status") or ("active" if d.get("urgent") else "pending"), None]
        elif cur is None:
            continue  # created before a horizon the log does not know
        elif e.action == "entry.enrol":
            status = d.get("status") or cur[0]
            g.entries[eid] = [status, None if status == "pending" else cur[1]]
            if isinstance(d.get("photo_sha256"), str):
                g.templates[f"{eid}:{d['photo_sha256']}"] = [e.actor, bool(d.get("held_until_approved"))]
        elif e.action == "entry.approve":
            g.entries[eid] = ["active", e.actor]
            for k, t in g.templates.items():
                if k.startswith(f"{eid}:"):
                    t[1] = False  # the approval releases held templates
        elif e.action in ("entry.revoke", "entry.expire"):
            g.entries[eid] = ["revoked" if e.action == "entry.revoke" else "expired", cur[1]]
            for k in [k for k in g.templates if k.startswith(f"{eid}:")]:
                del g.templates[k]  # destroyed
    return g


def _replay_alarm(g: Governed, e: ChainEntry, d: dict) -> None:
    """One alarm step of the log onto ``g.alarms`` (see :attr:`Governed.alarms`)."""
    aid = d.get("alert_id")
    if not isinstance(aid, int):
        return
    if e.action == "alarm.raise":
        g.alarms[aid] = ["new", None, False, d.get("priority"), d.get("escalate_at"), d.get("escalate_to")]
        return
    cur = g.alarms.get(aid)
    if cur is None:
        return  # raised before a horizon the log does not know
    if e.action == "alarm.escalate":
        cur[2] = True
    elif isinstance(d.get("to"), str):
        cur[0], cur[1] = d["to"], d.get("owner")


def alarm_mismatches(
    g: Governed,
    alarms: Iterable[tuple[int, str | None, str | None, float | None, str | None, float | None, str | None, Any]],
) -> list[str]:
    """Every stored alarm the keyed log does not back: its state, owner, escalation, priority or escalation time
    and role changed in the database without the audited step (an owner rewritten, an escalation suppressed).

    Args:
        alarms: ``(alert id, alarm_state, owner, escalated_at, priority, escalate_at, escalate_to, created_at)``.
    """
    out: list[str] = []
    for aid, state, owner, escalated_at, priority, escalate_at, escalate_to, created_at in alarms:
        if _before(created_at, g.horizon):
            continue
        logged = g.alarms.get(aid)
        if logged is None:
            if state is not None:
                out.append(f"alert {aid} has an alarm ({state}) but the keyed log has no alarm.raise for it")
            continue
        l_state, l_owner, l_esc, l_prio, l_at, l_to = logged
        if (state, owner) != (l_state, l_owner):
            out.append(
                f"alert {aid}'s alarm is {state} (owner {owner!r}) but the keyed log says {l_state} (owner {l_owner!r})"
            )
        if (escalated_at is not None) != bool(l_esc):
            out.append(
                f"alert {aid}'s alarm is {'' if escalated_at is not None else 'not '}escalated but the keyed log "
                f"says {'it is' if l_esc else 'it is not'}"
            )
        same_at = (escalate_at is None) == (l_at is None) and (escalate_at is None or abs(escalate_at - l_at) < 1e-3)
        if priority != l_prio or escalate_to != l_to or not same_at:
            out.append(
                f"alert {aid}'s alarm policy ({priority}, escalation {escalate_at} to {escalate_to}) differs from "
                f"the keyed alarm.raise ({l_prio}, escalation {l_at} to {l_to})"
            )
    return out


def _before(when: datetime | None, horizon: str | None) -> bool:
    if horizon is None or when is None:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < datetime.fromisoformat(horizon)


def mismatches(
    g: Governed,
    entries: Iterable[tuple[int, str, str, str, str | None, datetime | None]],
    alerts: Iterable[tuple[int, str, datetime | None]],
    reviews: Iterable[tuple[int, int, str, str]],
    templates: Iterable[tuple[int, int, str | None, str, bool, datetime | None]] = (),
) -> list[str]:
    """Every stored governed row the keyed log does not back, one line each.

    Args:
        g: the replayed state (:func:`replay`).
        entries: ``(id, watchlist, name, status, approved_by, created_at)`` of every entry.
        alerts: ``(id, status, created_at)`` of every alert.
        reviews: ``(row id, alert id, user, action)`` of every alert review.
        templates: ``(template id, entry id, added_by, photo sha256, held, entry created_at)`` of every template.
    """
    out = [why for _, why in entry_mismatches(g, entries)]
    for tid, eid, added_by, sha, held, created_at in templates:
        if _before(created_at, g.horizon):
            continue
        t = g.templates.get(f"{eid}:{sha}")
        where = f"template {tid} of entry {eid} (photo {sha[:12]}…)"
        if t is None:
            out.append(f"{where} has no keyed entry.enrol")
        elif added_by is not None and added_by != t[0]:
            out.append(f"{where} says it was added by {added_by!r}; the keyed log says {t[0]!r}")
        elif t[1] and not held:
            out.append(f"{where} is matchable, but the keyed log holds it until an approval that never came")
    by_alert: dict[int, list[tuple[int, str, str]]] = {}
    for rid, aid, user, action in reviews:
        by_alert.setdefault(aid, []).append((rid, user, action))
    for aid, status, created_at in alerts:
        if _before(created_at, g.horizon):
            continue
        logged = [(user, action) for user, action in g.reviews.get(aid, [])]
        rows = by_alert.get(aid, [])
        for rid, user, action in rows:
            if (user, action) not in logged:
                out.append(
                    f"alert review row {rid} (alert {aid}: {action} by {user!r}) has no keyed alert.{action} entry"
                )
        stored_pairs = {(u, a) for _, u, a in rows}
        for user, action in logged:
            if (user, action) not in stored_pairs:
                out.append(f"alert {aid}: the keyed log records a {action} by {user!r} that has no review row")
        expected = alert_status(logged)
        if status != expected:
            out.append(f"alert {aid} is {status} but its keyed reviews make it {expected}")
    return out


def entry_mismatches(
    g: Governed, entries: Iterable[tuple[int, str, str, str, str | None, datetime | None]]
) -> list[tuple[int, str]]:
    """``(entry id, why)`` for each stored entry (rows as in :func:`mismatches`) the replayed log does not back."""
    out: list[tuple[int, str]] = []
    for eid, wl, name, status, approved_by, created_at in entries:
        if _before(created_at, g.horizon):
            continue
        st = g.entries.get(eid)
        where = f"entry {eid} ({wl}/{name})"
        if st is None:
            if status in ("active", "revoked", "expired") or approved_by is not None:
                out.append((eid, f"{where} is {status} but the keyed log has no entry.create for it"))
            continue
        logged, by = st
        if status == "revoked" and logged in ("pending", "active") and wl in g.shredded:
            continue
        if status != logged:
            out.append(
                (
                    eid,
                    f"{where} is {status} but the keyed log says {logged}"
                    + (" (no keyed entry.approve backs it)" if status == "active" else ""),
                )
            )
        elif status == "active" and approved_by != by:
            out.append(
                (
                    eid,
                    f"{where} is active, approved by {approved_by!r}, but the keyed log has "
                    + (f"its approval by {by!r}" if by else "no entry.approve for it (not approved)"),
                )
            )
    return out
