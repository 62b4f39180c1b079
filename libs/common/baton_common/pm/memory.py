"""Single-process implementations of the payment ports, for tests and tools, never for production.

They hold their state in this process only. The nonce store makes a fresh
generation when it is created, so a process that restarts with them refuses
every params it quoted before (as ``TicketParams expired``) rather than taking
replays against its empty state; but its balances and journaled credits are
gone with the process. A negotiator uses ``baton_common.pm_nats``, which every
replica shares and which outlives restarts. Each method runs without awaiting,
so it is atomic within one event loop.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from .errors import NonceStateChanged
from .nonces import CreditEntry, NonceRecord, may_forget
from .ports import BalanceEntry
from .recipient_rand import GENERATION_BYTES
from .ticket import SignedTicket
from .winners import WinnerPending, WinnerRecord, WinnerSettled, settle

__all__ = ["MemoryBalanceStore", "MemoryNonceStore", "MemoryWinningTickets"]



def _copy(record: NonceRecord) -> NonceRecord:
    """A copy ``change`` may mutate: its lists are new, their items (ints, frozen entries) shared."""
    return NonceRecord(record.expiration_block, list(record.nonces), dict(record.credits))


class MemoryNonceStore:
    durable = False

    def __init__(self, *, generation: bytes | None = None) -> None:
        """``generation`` is for tests that need a fixed one; by default each store makes its own."""
        self._records: dict[str, NonceRecord] = {}
        self._generation = generation or os.urandom(GENERATION_BYTES)
        self._cleanup_block = 0

    async def generation(self) -> bytes:
        return self._generation

    async def update(
        self,
        key: str,
        expiration_block: int,
        generation: bytes,
        change: Callable[[NonceRecord], NonceRecord | None],
    ) -> NonceRecord:
        current = self._records.get(key)
        copy = _copy(current) if current else NonceRecord(expiration_block)
        new = change(copy)
        if new is not None:
            self._records[key] = new
        if generation != self._generation or expiration_block <= self._cleanup_block:
            raise NonceStateChanged()
        return new if new is not None else copy

    async def cleanup(
        self,
        last_seen_block: int,
        complete: Callable[[list[CreditEntry]], Awaitable[None]] | None = None,
    ) -> int:
        """Forget the records whose params expired at or before ``last_seen_block``; as ``KvNonceStore.cleanup``."""
        before, mark = self._cleanup_block, last_seen_block
        expiring = [(k, r) for k, r in self._records.items() if may_forget(r, last_seen_block)]
        for _, record in expiring:
            owed = record.expiration_block > before and record.generation == self._generation.hex()
            if complete is not None and owed and record.credits:
                try:
                    await complete(list(record.credits.values()))
                except Exception:  # noqa: BLE001 (kept, and the mark below it, for the next cleanup)
                    mark = min(mark, record.expiration_block - 1)
        self._cleanup_block = max(self._cleanup_block, mark)
        dropped = 0
        for key, record in expiring:
            if record.expiration_block <= self._cleanup_block and self._records.get(key) is record:
                del self._records[key]
                dropped += 1
        return dropped

    def snapshot(self) -> dict[str, NonceRecord]:
        """A copy of every record, by recipientRandHash (hex)."""
        return {k: _copy(r) for k, r in self._records.items()}


class MemoryBalanceStore:
    expires_idle = False
    durable = False

    def __init__(self) -> None:
        self._entries: dict[str, BalanceEntry] = {}

    async def get(self, key: str) -> BalanceEntry | None:
        return self._entries.get(key)

    async def update(
        self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry | None]
    ) -> BalanceEntry | None:
        entry = change(self._entries.get(key))
        if entry is None:
            return self._entries.get(key)
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
    durable = False

    def __init__(self) -> None:
        self._records: dict[bytes, WinnerRecord] = {}

    async def store(self, ticket: SignedTicket) -> bool:
        key = ticket.ticket_hash
        if key in self._records:
            return False
        self._records[key] = WinnerPending(ticket)
        return True

    async def pending(self) -> list[SignedTicket]:
        """Every pending ticket, oldest first."""
        return [r.ticket for r in self._records.values() if isinstance(r, WinnerPending)]

    async def settle(self, ticket_hash: bytes, result: WinnerSettled) -> WinnerRecord:
        current = self._records.get(ticket_hash)
        if current is None:
            raise KeyError(f"no winning ticket {ticket_hash.hex()}")
        self._records[ticket_hash] = record = settle(current, result)
        return record

    async def record(self, ticket_hash: bytes) -> WinnerRecord | None:
        return self._records.get(ticket_hash)
