"""Encryption at rest with a key per watchlist (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Each watchlist has a random data key, stored in the database *wrapped* (encrypted) by the installation's master
key. The master key comes from ``METROSIGHT_MASTER_KEY`` (a Fernet key) or from ``<home>/master.key`` (created
with mode 0600 at first use); keep it off the database host in production. Deleting a watchlist's data key makes
all of its templates and crops unreadable, including copies in backups (crypto-shredding).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MASTER_KEY_ENV = "METROSIGHT_MASTER_KEY"


class CryptoError(Exception):
    """A key is missing or wrong, or a ciphertext was tampered with."""


def load_master_key(home_root: Path, environ: dict[str, str] | None = None) -> bytes:
    """The master key: from the environment, else ``<home>/master.key`` (created if absent, mode 0600).

    Raises:
        CryptoError: the key in the environment or the file is not a valid Fernet key, or the file cannot be read.
    """
    env = os.environ if environ is None else environ
    raw = env.get(MASTER_KEY_ENV)
    source = MASTER_KEY_ENV
    if raw is None:
        path = home_root / "master.key"
        source = str(path)
        if not path.exists():
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
            return key
        try:
            raw = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise CryptoError(f"{source}: not a valid key (expected 32 url-safe base64-encoded bytes)") from None
        except OSError as exc:  # a folder, a file this user may not read
            raise CryptoError(f"{source}: cannot be read ({exc.strerror or exc}): check it is the key file") from None
    key = raw.encode() if isinstance(raw, str) else raw
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise CryptoError(f"{source}: not a valid key (expected 32 url-safe base64-encoded bytes)") from None
    return key


class KeyRing:
    """Wraps, unwraps and uses watchlist data keys.

    Args:
        master_key: the installation's Fernet master key.
    """

    def __init__(self, master_key: bytes) -> None:
        self._master = Fernet(master_key)
        self._master_key = master_key

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one ``purpose`` (e.g. ``"audit-chain"``), derived from the master key with
        HKDF-SHA256: it lives wherever the master key lives, never in the database, and a key of one purpose says
        nothing about another's."""
        from cryptography.hazmat.primitives import hashes  # cryptography: native, loaded on first use
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # cryptography: native, loaded on first use

        ikm = base64.urlsafe_b64decode(self._master_key)
        return HKDF(hashes.SHA256(), 32, salt=None, info=f"metrosight/{purpose}/v1".encode()).derive(ikm)

    def audit_keys(self) -> tuple[bytes, Ed25519PrivateKey]:
        """The audit chain's HMAC-SHA256 key and the Ed25519 key that signs its checkpoints (both derived)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # cryptography: native, loaded on first use
            Ed25519PrivateKey,
        )

        return self.derive("audit-chain"), Ed25519PrivateKey.from_private_bytes(self.derive("audit-checkpoint"))

    def new_wrapped_key(self) -> bytes:
        """A fresh data key, wrapped by the master key (store this)."""
        return self._master.encrypt(Fernet.generate_key())

    def _data_key(self, wrapped: bytes) -> Fernet:
        try:
            return Fernet(self._master.decrypt(wrapped))
        except InvalidToken:
            raise CryptoError("cannot unwrap a watchlist key: wrong master key or damaged key record") from None

    def encrypt(self, wrapped: bytes, plaintext: bytes) -> bytes:
        return self._data_key(wrapped).encrypt(plaintext)

    def decrypt(self, wrapped: bytes | None, token: bytes) -> bytes:
        """Raises CryptoError when the key was deleted (``wrapped`` is None) or the token does not match."""
        if wrapped is None:
            raise CryptoError("the watchlist's key was destroyed: its data is unreadable")
        try:
            return self._data_key(wrapped).decrypt(token)
        except InvalidToken:
            raise CryptoError("ciphertext does not match the watchlist key (tampered or wrong key)") from None
