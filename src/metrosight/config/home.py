"""Where an installation keeps its database, media and caches.

``--home DIR`` or ``METROSIGHT_HOME`` choose it; the default is the user's data directory. Several homes can
coexist on one machine, each an independent installation.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from metrosight.core.names import file_token

PRIVATE_UMASK = 0o077
PRIVATE_FILES = ("metrosight.db", "metrosight.db-wal", "metrosight.db-shm", "master.key", "audit.checkpoints")


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
        from platformdirs import user_data_dir  # platformdirs: only when no home is given

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
        """Create the folders, owner-only, and make every file this process creates from now on owner-only.

        The process's umask becomes 0077, so the database and its WAL/SHM files, keys, the audit checkpoint file,
        crops and snapshots are created with mode 0600 (folders 0700); the home folder itself is set to 0700 and the
        files of an older installation that exist already are tightened to 0600.

        Raises:
            OSError: the folder cannot be created (e.g. read-only or full disk).
        """
        os.umask(PRIVATE_UMASK)
        for p in (self.root, self.media, self.cache):
            p.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = self.root.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX:
            os.chmod(self.root, 0o700)  # not a shared folder such as /tmp (sticky): that one is left as it is
        for name in PRIVATE_FILES:
            f = self.root / name
            if f.is_file() and f.stat().st_mode & 0o077:
                f.chmod(0o600)
        return self


def media_file(media: Path, kind: str, camera_id: str, key: str, suffix: str) -> Path:
    """Where a stored image of ``camera_id`` goes: ``media/<kind>/cam-<token>/<token><suffix>``, both tokens hashes
    (:func:`metrosight.core.names.file_token`) of the camera id and of ``key`` (an alert or event id), so no
    camera id, name or id a camera sent ever becomes part of a path. The folder is created.

    Raises:
        OSError: the folder cannot be created, or the path would leave ``media`` (it cannot; checked anyway).
    """
    root = Path(media).resolve()
    folder = root / kind / f"cam-{file_token(camera_id, length=16)}"
    target = folder / f"{file_token(camera_id, key)}{suffix}"
    if not target.resolve().is_relative_to(root):
        raise OSError(f"refusing to write outside {root}")
    folder.mkdir(parents=True, exist_ok=True)
    return target
