"""Loading the recipientRand secret that every negotiator replica shares.

This is its own setting (``BATON_NEGOTIATOR_TICKET_SECRET_FILE``), not go-livepeer's
``-orchSecret``, which authenticates remote transcoders. The file holds either
hex text (64 or more hex digits, an optional ``0x``, surrounding whitespace
ignored) or at least 32 raw bytes. Generate one with ``openssl rand -hex 32``.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import TicketSecretError

__all__ = ["MIN_SECRET_BYTES", "SECRET_SETTING", "load_ticket_secret", "parse_ticket_secret"]

MIN_SECRET_BYTES = 32
SECRET_SETTING = "BATON_NEGOTIATOR_TICKET_SECRET_FILE"

_HEX = re.compile(rb"(?:0x)?((?:[0-9a-fA-F]{2})+)")


def parse_ticket_secret(content: bytes, *, source: str = "the ticket secret") -> bytes:
    """The secret bytes in a file's content: hex text if it is all hex, else the raw bytes."""
    match = _HEX.fullmatch(content.strip())
    secret = bytes.fromhex(match.group(1).decode()) if match else content
    if len(secret) < MIN_SECRET_BYTES:
        raise TicketSecretError(
            f"{SECRET_SETTING}: {source} holds {len(secret)} bytes of secret; "
            f"it needs at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32 > FILE`)"
        )
    return secret


def load_ticket_secret(path: str | Path | None) -> bytes:
    """Read the secret from ``path``; raises TicketSecretError naming the setting."""
    if not path:
        raise TicketSecretError(
            f"{SECRET_SETTING} is not set: every negotiator replica needs the same "
            f"ticket secret file (at least {MIN_SECRET_BYTES} bytes, hex or raw)"
        )
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise TicketSecretError(f"{SECRET_SETTING}: cannot read {path}: {exc.strerror or exc}") from exc
    return parse_ticket_secret(content, source=str(path))
