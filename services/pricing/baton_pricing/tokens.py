"""The admin API's bearer tokens: a file naming each token's holder and role.

One token per line, ``<holder> <role> <token>``; ``#`` starts a comment.
Roles: ``admin`` (read and change prices) and ``read-only``. The holder is
who the audit log names. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from baton_common.config import ConfigError

__all__ = ["ROLES", "Holder", "Tokens"]

Role = Literal["admin", "read-only"]
ROLES: dict[str, Role] = {"admin": "admin", "read-only": "read-only", "readonly": "read-only", "read": "read-only"}
MIN_TOKEN = 16
SETTING = "BATON_PRICING_ADMIN_TOKENS_FILE"


@dataclass(frozen=True)
class Holder:
    name: str
    role: Role
    token: bytes = field(repr=False)


class Tokens:
    def __init__(self, holders: list[Holder]) -> None:
        self.holders = holders

    @classmethod
    def load(cls, path: str) -> Tokens:
        """Read the file; ConfigError naming the setting and the line (never the token)."""
        if not path:
            return cls([])
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"pricing: {SETTING}: cannot read {path}: {exc}") from None
        holders: list[Holder] = []
        seen: set[bytes] = set()
        for n, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ConfigError(f"pricing: {SETTING}: {path} line {n}: expected `<holder> <role> <token>`")
            name, role, token = parts
            if role.lower() not in ROLES:
                raise ConfigError(f"pricing: {SETTING}: {path} line {n}: role {role!r} is not admin or read-only")
            if len(token) < MIN_TOKEN:
                raise ConfigError(f"pricing: {SETTING}: {path} line {n}: the token is shorter than {MIN_TOKEN} characters")
            raw = token.encode()
            if raw in seen:
                raise ConfigError(f"pricing: {SETTING}: {path} line {n}: the same token is listed twice")
            seen.add(raw)
            holders.append(Holder(name=name, role=ROLES[role.lower()], token=raw))
        return cls(holders)

    def holder(self, token: str) -> Holder | None:
        raw = token.encode()
        found = None
        for holder in self.holders:  # compare with every token, so timing tells nothing
            if hmac.compare_digest(holder.token, raw):
                found = holder
        return found
