"""The audit anchor file: the newest link of the chain (``"<seq> <hash>\\n"``), kept outside the database.

Written by every process that appends to the log, after its transaction committed, possibly by many threads and
processes at once. :func:`write_anchor` is the one place that writes it: under an exclusive lock on a sibling
``.lock`` file, only forward (a writer whose ``seq`` is not newer than the anchor's leaves it alone, so commits
that finish out of order never move it back), through a uniquely named temporary file replaced atomically
(``os.replace``): a reader sees the old or the new anchor, never a torn one, and no writer fails because another
one renamed "its" temporary file.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from pathlib import Path

_local_lock = threading.Lock()  # flock is per open file description: threads of one process also queue here


def read_anchor(path: Path) -> tuple[int, str] | None:
    """``(seq, hash)`` from the anchor file, or None when it is missing or unreadable."""
    try:
        seq, digest = path.read_text().split()
        return int(seq), digest
    except (OSError, ValueError):
        return None


def write_anchor(path: Path, seq: int, digest: str) -> bool:
    """Record ``seq``/``digest`` as the newest link unless the file already holds a newer one. Returns whether it
    was written.

    Raises:
        OSError: the folder is not writable (the caller's action is already committed; it logs this).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with _local_lock:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = read_anchor(path)
            if current is not None and current[0] >= seq:
                return False
            tmp_fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(tmp_fd, "w") as f:
                    f.write(f"{seq} {digest}\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return True
        finally:
            os.close(fd)  # releases the flock
