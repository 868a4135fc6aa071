"""A user's own settings of the operator UI (language, time zone): read on every page, changed on the account page
(audited)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from metrosight.core.names import InvalidInput
from metrosight.core.when import zone
from metrosight.policy.rules import Actor, PolicyError
from metrosight.store.models import UserPreference
from metrosight.store.uow import UnitOfWork

#: a language tag as stored: ``ru``, ``pt_BR``, ``sr_Latn`` (Babel's identifiers)
_TAG = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]{2,8}){0,2}$")


@dataclass(frozen=True, slots=True)
class Preferences:
    """``language``: a language code or None (the browser's); ``timezone``: an IANA zone or None (the
    installation's)."""

    language: str | None
    timezone: str | None


class PreferenceRepository:
    """Per-user UI settings."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def get(self, user: str) -> Preferences | None:
        """The settings of ``user`` (None: never set)."""
        with self.uow.read() as s:
            row = s.get(UserPreference, user)
        return None if row is None else Preferences(row.language, row.timezone)

    def set(self, actor: Actor, language: str | None, timezone: str | None) -> Preferences:
        """Set the acting user's own language and zone (None: the default); audited as ``user.preferences``.

        Raises:
            PolicyError: a malformed language code or an unknown zone (nothing is changed).
        """
        language = (language or "").strip() or None
        timezone = (timezone or "").strip() or None
        if language is not None and not _TAG.match(language):
            raise PolicyError(f"unknown language {language!r}: give a code such as en or ru")
        if timezone is not None:
            try:
                zone(timezone)
            except InvalidInput as exc:
                raise PolicyError(str(exc)) from None
        with self.uow.write() as s:
            row = s.get(UserPreference, actor.name)
            if row is None:
                row = UserPreference(user=actor.name)
                s.add(row)
            row.language, row.timezone, row.updated_at = language, timezone, datetime.now(UTC)
            self.uow.audit(s, actor.name, "user.preferences", actor.name, {"language": language, "timezone": timezone})
        return Preferences(language, timezone)
