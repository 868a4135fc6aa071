"""Signed checkpoints of the audit chain's head, in an append-only file outside the database.

Each line is one canonical JSON object::

    {"n": 7, "kind": "head", "seq": 412, "head": "<hash of entry 412>", "at": "…", "prev": "<sha256 of line 6>",
     "sig": "<base64 Ed25519 signature of the other fields>"}

``kind`` is ``head`` (the newest entry at that moment), ``purge`` (the retention purge removed entries up to
``through_seq``, whose hash was ``through_hash``) or ``legacy`` (the first keyed entry after an upgrade from the
unkeyed chain; ``legacy_through`` is the last unkeyed entry). ``n`` counts the lines and ``prev`` chains each line to
the one before, so a line removed from the middle, an edited line and a line not signed with this installation's key
are all detected; an incomplete last line shows a truncated file. Removing whole lines *at the end* of the file is
only detected against a copy kept elsewhere (e.g. syslog): keep the file on append-only storage (``chattr +a``).

The file is opened ``O_APPEND`` with mode 0600; writers of several threads and processes queue on an exclusive
``flock`` of the file itself, and each line is one ``write`` followed by ``fsync``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One verified line: its number ``n``, ``kind``, the head ``seq``/``head`` it vouches for, and extra fields."""

    n: int
    kind: str
    seq: int
    head: str
    at: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckpointRead:
    """What :meth:`CheckpointFile.read` found: ``exists``; the verified ``checkpoints``; the first ``problem``."""

    exists: bool
    checkpoints: list[Checkpoint]
    problem: str | None = None


class CheckpointFile:
    """The append-only checkpoint file at ``path``, signing with ``signer`` (an Ed25519 private key)."""

    def __init__(self, path: Path, signer: Ed25519PrivateKey) -> None:
        self.path = path
        self._signer = signer

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._signer.public_key()

    def _last_line(self) -> bytes | None:
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 8192))
                tail = f.read()
        except FileNotFoundError:
            return None
        lines = [x for x in tail.split(b"\n") if x.strip()]
        return lines[-1] if lines else None

    def has_any(self) -> bool:
        return self._last_line() is not None

    def append(self, seq: int, head: str, kind: str = "head", **extra: Any) -> bool:
        """Sign and append one checkpoint. A ``head`` checkpoint that is not newer than the file's last line is
        skipped (several writers; commits that finish out of order). Returns whether a line was written.

        Raises:
            OSError: the file cannot be written (e.g. a full disk).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = self._last_line()
            n, prev = 1, GENESIS
            if last is not None:
                try:
                    obj = json.loads(last)
                    n = int(obj["n"]) + 1
                    if kind == "head" and int(obj["seq"]) >= seq:
                        return False
                except (ValueError, KeyError, TypeError):
                    n = 0  # a damaged last line: keep appending; verification reports the damage
                prev = hashlib.sha256(last).hexdigest()
            body = {
                "n": n,
                "kind": kind,
                "seq": seq,
                "head": head,
                "prev": prev,
                "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                **extra,
            }
            body["sig"] = base64.b64encode(self._signer.sign(_canonical(body))).decode("ascii")
            os.write(fd, _canonical(body) + b"\n")
            os.fsync(fd)
            return True
        finally:
            os.close(fd)  # releases the flock

    def _read_locked(self) -> bytes:
        """The whole file, read under a shared ``flock``: a writer appends under an exclusive one, so a line being
        appended by another thread or process is never seen half-written (as a truncated file).

        Raises:
            OSError: the file cannot be opened or read (FileNotFoundError when there is none).
        """
        with open(self.path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            try:
                return f.read()
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def read(self) -> CheckpointRead:
        """Every line, each checked (signature, numbering, link to the line before). Never raises for content."""
        from cryptography.exceptions import InvalidSignature  # cryptography: native, loaded on first use

        try:
            data = self._read_locked()
        except FileNotFoundError:
            return CheckpointRead(False, [])
        except OSError as exc:
            return CheckpointRead(True, [], f"the checkpoint file {self.path} cannot be read: {exc.strerror}")
        if data and not data.endswith(b"\n"):
            return CheckpointRead(
                True, [], f"the checkpoint file {self.path} was truncated (its last line is incomplete)"
            )
        public = self.public_key
        out: list[Checkpoint] = []
        prev = GENESIS
        for i, line in enumerate(data.split(b"\n")[:-1], start=1):
            try:
                obj = json.loads(line)
                sig = base64.b64decode(obj.pop("sig"))
                public.verify(sig, _canonical(obj))
            except (ValueError, KeyError, TypeError, InvalidSignature):
                return CheckpointRead(
                    True,
                    out,
                    f"checkpoint line {i} of {self.path} is not signed by this installation's key (forged or altered)",
                )
            if obj["n"] != i or obj["prev"] != prev:
                return CheckpointRead(
                    True,
                    out,
                    f"checkpoint line {i} of {self.path} does not follow line {i - 1}: lines were removed or reordered",
                )
            prev = hashlib.sha256(line).hexdigest()
            extra = {k: v for k, v in obj.items() if k not in ("n", "kind", "seq", "head", "at", "prev")}
            out.append(Checkpoint(obj["n"], obj["kind"], int(obj["seq"]), obj["head"], obj["at"], extra))
        return CheckpointRead(True, out)
