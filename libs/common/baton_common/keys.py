"""The keys Baton's services share, and how each is found.

- **The orchestrator's ETH key** (on-chain only) lives in one encrypted
  keystore (go-livepeer's ``-ethKeystorePath`` / ``-ethPassword``), which two
  services read: the negotiator, to sign Ping answers and TranscodeData, and
  chain, to send transactions (reward, redeemWinningTicket). Offchain there is
  no key and every signature is empty (``OFFCHAIN_SIGNATURE``), as in go-livepeer.
- **The auth-token HMAC key** signs ``AuthToken.token`` (spec §3.1). go-livepeer
  draws it at random per process; Baton's negotiator replicas must all accept a
  token any one of them issued, so on-chain it is derived from the ticket secret
  (which every replica already shares) with HKDF-SHA256 and its own label, and
  never equals the secret or anything else derived from it. Offchain there is
  no ticket secret: ``baton up`` creates ``AUTH_KEY_FILE`` in its state folder
  (:func:`load_or_create_key_file`) and every replica reads that file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "AUTH_KEY_FILE",
    "AUTH_KEY_INFO",
    "KEY_BYTES",
    "OFFCHAIN_SIGNATURE",
    "auth_token_key",
    "hkdf_sha256",
    "load_or_create_key_file",
]

KEY_BYTES = 32
AUTH_KEY_INFO = b"baton/negotiator/auth-token-hmac/v1"
"""HKDF info (the domain-separation label) of the auth-token key; a new label = a new key."""
AUTH_KEY_FILE = "auth-token.key"
"""File name of the offchain auth-token key in ``baton up``'s state folder: 64 hex characters."""
OFFCHAIN_SIGNATURE = b""
"""What every signature is offchain: empty, as go-livepeer sends."""


def hkdf_sha256(ikm: bytes, info: bytes, *, salt: bytes = b"", length: int = KEY_BYTES) -> bytes:
    """RFC 5869 HKDF with SHA-256: extract, then expand to ``length`` bytes."""
    if length > 255 * 32:
        raise ValueError("HKDF-SHA256 yields at most 8160 bytes")
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def load_or_create_key_file(path: str | Path) -> bytes:
    """The key in ``path`` (hex); created with ``KEY_BYTES`` random bytes, mode 0600, if absent.

    Two processes racing to create it end up with the same key: the loser of
    the exclusive create reads the winner's file.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        text = path.read_text().strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"key file {path} must hold {KEY_BYTES * 2} hex characters: {exc}") from None
    if len(key) < KEY_BYTES:
        raise ConfigError(f"key file {path} holds {len(key)} bytes; at least {KEY_BYTES} are needed")
    return key


def auth_token_key(*, ticket_secret: bytes | None = None, key_file: str | Path | None = None) -> bytes:
    """The auth-token HMAC key: derived from the ticket secret on-chain, else read from ``key_file``."""
    if ticket_secret:
        return hkdf_sha256(ticket_secret, AUTH_KEY_INFO)
    if key_file:
        return load_or_create_key_file(key_file)
    raise ConfigError("no auth-token key: set the ticket secret (on-chain) or the offchain key file")
