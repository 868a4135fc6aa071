"""Where an installation keeps its database, media and caches.

``--home DIR`` or ``METROSIGHT_HOME`` choose it; the default is the user's data directory. Several homes can
coexist on one machine, each an independent installation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, explicit: Path | None = None) -> Home:
        if explicit is not None:
            return cls(Path(explicit).expanduser().resolve())
        env = os.environ.get("METROSIGHT_HOME")
        if env:
            return cls(Path(env).expanduser().resolve())
        from platformdirs import user_data_dir

        return cls(Path(user_data_dir("metrosight", appauthor=False)))

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'metrosight.db'}"

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def ensure(self) -> Home:
        """Create the folders. Raises OSError (e.g. read-only or full disk)."""
        for p in (self.root, self.media, self.cache):
            p.mkdir(parents=True, exist_ok=True)
        return self
