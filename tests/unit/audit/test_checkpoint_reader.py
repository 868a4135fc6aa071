"""The checkpoint file's reader never sees a line another writer is still appending (a stateful test of governed
workflows once read a half-written line and reported the file as truncated)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from metrosight.audit.checkpoint import CheckpointFile, CheckpointRead


def test_a_read_waits_for_the_line_being_appended(tmp_path: Path) -> None:
    cp = CheckpointFile(tmp_path / "audit.checkpoints", Ed25519PrivateKey.generate())
    assert cp.append(1, "a" * 64)
    good = (tmp_path / "audit.checkpoints").read_bytes()
    # A second writer holds the exclusive lock and has written half of its line, as an append in progress would.
    fd = os.open(cp.path, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, good[: len(good) // 2])
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(cp.read()))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive(), "the reader did not wait for the writer's lock"
    os.write(fd, good[len(good) // 2 :])  # the rest of the (here: duplicated, so invalid) line, then release
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    reader.join(5)
    (read,) = result
    assert isinstance(read, CheckpointRead)
    assert "truncated" not in (read.problem or "")  # it saw whole lines: the second one, copied, fails its link
