"""The two sealed files of a backup: the keys, under a passphrase, and the data, under a key derived from them.

- **Keys file** (JSON): the installation's master key (``metrosight backup`` seals nothing else), encrypted
  with AES-256-GCM under a key derived from the operator's passphrase with scrypt (n=2^15, r=8, p=1; 64 MiB, about
  0.1 s). A wrong passphrase fails the GCM tag: :class:`SealError` says so and nothing else happens.
- **Data stream**: a header line (magic, then JSON: backup id, key fingerprint, chunk size) followed by chunks of
  at most ``CHUNK`` bytes, each AES-256-GCM with its index and a final-chunk flag in the associated data (chunks
  cannot be dropped, reordered or the stream cut short without the tag failing). Its key is derived (HKDF) from the
  master key, so the data file alone reveals nothing and never holds a key; the fingerprint (an HMAC of a fixed
  label under another derived key) tells whether a keys file belongs to it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import unicodedata
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from metrosight.policy.crypto import KeyRing

KEYS_FORMAT = "metrosight-backup-keys"
DATA_MAGIC = b"METROSIGHT-BACKUP-1\n"
CHUNK = 1 << 20
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
MIN_PASSPHRASE = 12
_LEN = struct.Struct(">I")


class SealError(Exception):
    """A sealed file cannot be opened: wrong passphrase, wrong keys, altered or truncated; the message says which."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(s), validate=True)
    except (ValueError, TypeError):
        raise SealError(f"{what} is damaged (not base64)") from None


def fingerprint(master_key: bytes) -> str:
    """A public tag of the master key (hex, 16 bytes): equal for equal keys, says nothing about the key."""
    tag = hmac.new(KeyRing(master_key).derive("backup-fingerprint"), b"metrosight backup", hashlib.sha256)
    return tag.hexdigest()[:32]


def _passphrase_key(passphrase: str, salt: bytes) -> bytes:
    """scrypt of the passphrase in Unicode NFC: the same passphrase typed on a keyboard or input method that
    composes accents differently (``é`` as one character or as ``e`` and a combining accent) opens the file."""
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        unicodedata.normalize("NFC", passphrase).encode()
    )


def _weak(passphrase: str) -> bool:
    """Shorter than :data:`MIN_PASSPHRASE` characters not counting blanks at its ends, or of under 4 distinct
    characters (``aaaaaaaaaaaa``, twelve spaces)."""
    return len(passphrase.strip()) < MIN_PASSPHRASE or len(set(passphrase)) < 4


def seal_keys(secrets: dict[str, str], passphrase: str, backup_id: str, master_key: bytes) -> bytes:
    """The keys file's bytes: ``secrets`` (``master_key`` and optional others, text) under ``passphrase``.

    Raises:
        SealError: a weak passphrase: under :data:`MIN_PASSPHRASE` characters (blanks at its ends not counted), or
            fewer than 4 distinct characters.
    """
    if _weak(passphrase):
        raise SealError(
            f"the backup passphrase must have at least {MIN_PASSPHRASE} characters (not counting blanks at its ends) "
            "and not be one or a few characters repeated: choose a longer one"
        )
    salt, nonce = os.urandom(16), os.urandom(12)
    fp = fingerprint(master_key)
    aad = f"{KEYS_FORMAT}/{backup_id}/{fp}".encode()
    ct = AESGCM(_passphrase_key(passphrase, salt)).encrypt(nonce, json.dumps(secrets).encode(), aad)
    doc = {
        "format": KEYS_FORMAT,
        "version": 1,
        "backup_id": backup_id,
        "fingerprint": fp,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": "AES-256-GCM",
        "nonce": _b64(nonce),
        "ciphertext": _b64(ct),
    }
    return (json.dumps(doc, indent=1) + "\n").encode()


def open_keys(raw: bytes, passphrase: str) -> tuple[dict[str, str], str]:
    """``(secrets, fingerprint)`` from a keys file's bytes.

    Raises:
        SealError: not a keys file, or a wrong passphrase (or an altered file: the two cannot be told apart).
    """
    try:
        doc = json.loads(raw)
        if doc.get("format") != KEYS_FORMAT:
            raise ValueError
        kdf, fp = doc["kdf"], str(doc["fingerprint"])
        aad = f"{KEYS_FORMAT}/{doc['backup_id']}/{fp}".encode()
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SealError("not a metrosight backup keys file") from None
    # n a power of two (scrypt's rule), and at most 1 GiB of memory (128·n·r bytes) for an altered file to ask
    if kdf.get("name") != "scrypt" or not (
        2 <= n <= 1 << 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and 128 * n * r <= 1 << 30
    ):
        raise SealError("the keys file names key-derivation settings this version does not accept")
    salt, nonce = _unb64(kdf["salt"], "keys file"), _unb64(doc["nonce"], "keys file")
    ciphertext = _unb64(doc["ciphertext"], "keys file")
    if not 8 <= len(nonce) <= 128:
        raise SealError("the keys file is damaged (a bad nonce)")
    plain = None
    for phrase in dict.fromkeys((unicodedata.normalize("NFC", passphrase), passphrase)):  # NFC; as typed (older)
        try:
            key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(phrase.encode())
            plain = AESGCM(key).decrypt(nonce, ciphertext, aad)
            break
        except InvalidTag:
            continue
    if plain is None:
        raise SealError("wrong passphrase for the keys file (or the file was altered)")
    try:
        secrets = json.loads(plain)
        master = secrets["master_key"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SealError("the keys file is damaged (its sealed content is not a key)") from None
    if fingerprint(master) != fp:
        raise SealError("the keys file is inconsistent (its key does not match its fingerprint)")
    return secrets, fp


def _stream_key(master_key: bytes) -> bytes:
    return KeyRing(master_key).derive("backup-archive")


class SealedWriter:
    """A write-only file object that encrypts what is written to it into ``out`` (see the module docstring).

    Call :meth:`close` to write the final chunk; until then the stream is incomplete and will not open.
    """

    def __init__(self, out: IO[bytes], master_key: bytes, header: dict[str, Any]) -> None:
        self._out = out
        self._aead = AESGCM(_stream_key(master_key))
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        out.write(DATA_MAGIC + json.dumps({**header, "chunk": CHUNK}).encode() + b"\n")

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) > CHUNK:
            self._emit(bytes(self._buf[:CHUNK]), final=False)
            del self._buf[:CHUNK]
        return len(data)

    def _emit(self, chunk: bytes, final: bool) -> None:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, chunk, struct.pack(">Q?", self._index, final))
        self._out.write(_LEN.pack(len(ct)) + nonce + ct)
        self._index += 1

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buf), final=True)
            self._buf.clear()
            self._closed = True
            self._out.flush()


def read_header(f: IO[bytes]) -> dict[str, Any]:
    """The clear header of a data file (backup id, fingerprint, …), leaving ``f`` at the first chunk.

    Raises:
        SealError: not a metrosight backup data file.
    """
    if f.read(len(DATA_MAGIC)) != DATA_MAGIC:
        raise SealError("not a metrosight backup data file")
    try:
        header = json.loads(f.readline(1 << 16))
        if not isinstance(header, dict) or "fingerprint" not in header:
            raise ValueError
    except ValueError:
        raise SealError("the backup data file's header is damaged") from None
    return header


class SealedReader:
    """A read-only file object over a data file's chunks (after :func:`read_header`), decrypting and checking each.

    Raises (from :meth:`read`):
        SealError: a chunk was altered, reordered or is missing, or the file ends before its final chunk.
    """

    def __init__(self, f: IO[bytes], master_key: bytes) -> None:
        self._f = f
        self._aead = AESGCM(_stream_key(master_key))
        self._buf = b""
        self._index = 0
        self._done = False

    def _next(self) -> None:
        head = self._f.read(_LEN.size + 12)
        if len(head) < _LEN.size + 12:
            raise SealError("the backup data file is truncated (its final part is missing)")
        (n,) = _LEN.unpack(head[: _LEN.size])
        if n > CHUNK + 16:
            raise SealError("the backup data file is damaged (a part is too long)")
        ct = self._f.read(n)
        if len(ct) < n:
            raise SealError("the backup data file is truncated (it ends inside a part)")
        for final in (False, True):
            try:
                self._buf += self._aead.decrypt(head[_LEN.size :], ct, struct.pack(">Q?", self._index, final))
            except InvalidTag:
                continue
            self._index += 1
            self._done = final
            return
        raise SealError(f"the backup data file is damaged or was altered (part {self._index} does not authenticate)")

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buf) < size):
            self._next()
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out
