"""Single-process implementations of the payment ports.

Real implementations, not test doubles: a lone negotiator (or a test) can use
them. Replicas must share state through ``baton_common.pm_nats`` instead.
Each method runs without awaiting, so it is atomic within one event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .nonces import MAX_SENDER_NONCES, NonceRecord, may_forget, record_nonces
from .ports import BalanceEntry, NonceVerdict
from .ticket import SignedTicket

__all__ = ["MemoryBalanceStore", "MemoryNonceStore", "MemoryWinningTickets"]


class MemoryNonceStore:
    def __init__(self, max_nonces: int = MAX_SENDER_NONCES) -> None:
        self._records: dict[str, NonceRecord] = {}
        self._limit = max_nonces

    async def add(self, key: str, nonces: Sequence[int], expiration_block: int) -> list[NonceVerdict]:
        record = self._records.setdefault(key, NonceRecord(expiration_block))
        return record_nonces(record, nonces, self._limit)

    async def cleanup(self, last_seen_block: int) -> int:
        """Forget the records whose params expired at or before ``last_seen_block``; returns how many."""
        expired = [k for k, r in self._records.items() if may_forget(r, last_seen_block)]
        for key in expired:
            del self._records[key]
        return len(expired)

    def snapshot(self) -> dict[str, NonceRecord]:
        """A copy of every record, by recipientRandHash (hex)."""
        return {k: NonceRecord(r.expiration_block, list(r.nonces)) for k, r in self._records.items()}


class MemoryBalanceStore:
    def __init__(self) -> None:
        self._entries: dict[str, BalanceEntry] = {}

    async def get(self, key: str) -> BalanceEntry | None:
        return self._entries.get(key)

    async def update(self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry]) -> BalanceEntry:
        entry = change(self._entries.get(key))
        self._entries[key] = entry
        return entry

    def snapshot(self) -> dict[str, BalanceEntry]:
        """A copy of every entry, by key."""
        return dict(self._entries)

    def prune(self, older_than: float) -> int:
        """Drop entries last changed before ``older_than`` (a time.time() value)."""
        stale = [k for k, e in self._entries.items() if e.updated_at < older_than]
        for key in stale:
            del self._entries[key]
        return len(stale)


class MemoryWinningTickets:
    def __init__(self) -> None:
        self._tickets: dict[bytes, SignedTicket] = {}

    async def store(self, ticket: SignedTicket) -> bool:
        key = ticket.ticket_hash
        if key in self._tickets:
            return False
        self._tickets[key] = ticket
        return True

    def pending(self) -> list[SignedTicket]:
        """Every stored ticket, oldest first."""
        return list(self._tickets.values())

    def remove(self, ticket_hash: bytes) -> None:
        self._tickets.pop(ticket_hash, None)
