"""No-identification windows: times when matching is switched off for some cameras or lines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from metrosight.core.names import free_text, human_name, identifiers
from metrosight.policy.rules import Actor, PolicyError, aware, in_scope, require
from metrosight.store import version
from metrosight.store.errors import NotFound
from metrosight.store.models import NoIdWindow
from metrosight.store.uow import UnitOfWork


class WindowRepository:
    """No-identification windows (``store.windows``); adding or removing one bumps the gallery version."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def add(
        self,
        name: str,
        cameras: list[str],
        lines: list[str],
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        actor: Actor,
        now: datetime | None = None,
    ) -> int:
        """A no-identification window from ``starts_at`` to ``ends_at`` (UTC); returns its id. Raises PolicyError
        when it ends before it starts or is already over (a mistyped year would otherwise be "set" and never switch
        anything off); InvalidInput for a name, id or reason that breaks its rule."""
        require(actor, "set no-identification windows", "admin")
        name = human_name(name, "window name")
        cameras, lines = list(identifiers(cameras, "camera id")), list(identifiers(lines, "line"))
        if ends_at <= starts_at:
            raise PolicyError("a window must end after it starts")
        if ends_at <= (now or datetime.now(UTC)):
            raise PolicyError(
                f"the window ends in the past ({ends_at:%Y-%m-%d %H:%M} UTC): it would never switch matching off; "
                "check the dates"
            )
        reason = free_text(reason, "reason")
        if not reason:
            raise PolicyError("a no-identification window needs a reason")
        with self.uow.write() as s:
            w = NoIdWindow(
                name=name,
                scope={"cameras": cameras, "lines": lines},
                starts_at=starts_at,
                ends_at=ends_at,
                reason=reason,
                created_by=actor.name,
            )
            s.add(w)
            s.flush()
            self.uow.audit(
                s,
                actor.name,
                "window.add",
                name,
                {
                    "window_id": w.id,
                    "cameras": cameras,
                    "lines": lines,
                    "starts_at": starts_at.isoformat(),
                    "ends_at": ends_at.isoformat(),
                    "reason": reason,
                },
            )
            version.bump(s)
            return w.id

    def remove(self, window_id: int, actor: Actor) -> None:
        """Raises NotFound if there is no such window not yet removed; Forbidden unless an admin."""
        require(actor, "remove no-identification windows", "admin")
        with self.uow.write() as s:
            w = s.get(NoIdWindow, window_id)
            if w is None or w.removed_at is not None:
                raise NotFound(f"no active no-identification window {window_id}")
            w.removed_at, w.removed_by = datetime.now(UTC), actor.name
            self.uow.audit(s, actor.name, "window.remove", w.name, {"window_id": window_id})
            version.bump(s)

    def all(self) -> list[NoIdWindow]:
        """Windows not removed, by start."""
        with self.uow.read() as s:
            return list(
                s.scalars(select(NoIdWindow).where(NoIdWindow.removed_at.is_(None)).order_by(NoIdWindow.starts_at))
            )

    def allows(self, camera_id: str | None, line: str | None, now: datetime | None = None) -> bool:
        """False while a no-identification window covers this camera."""
        now = now or datetime.now(UTC)
        for w in self.all():
            if aware(w.starts_at) <= now < aware(w.ends_at) and in_scope(w.scope, camera_id, line):  # type: ignore[operator]
                return False
        return True
