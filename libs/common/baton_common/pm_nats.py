"""The payment ports over NATS JetStream KV, shared by every negotiator replica.

Each store takes an already-bound nats-py ``KeyValue``. Writes are
compare-and-set (``create`` when the key is new, ``update(last=revision)``
otherwise), retried on conflict, so one ticket sent to two replicas is credited
once. Values are msgspec JSON (wei amounts stay exact ints).

Bucket settings the caller should use (``js.create_key_value(bucket=..., ttl=...)``):

- nonces: ``ttl=NONCE_BUCKET_TTL``; a key only matters until its params expire
  (40 L1 blocks), after which a replay fails as ``TicketParams expired`` anyway.
- balances: ``ttl=BALANCE_IDLE_TTL`` (600 s), which is exactly the idle expiry.
- winning tickets: no ttl; the redeemer removes a ticket once it is settled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from .pm.errors import StoreContention
from .pm.nonces import MAX_SENDER_NONCES, NonceRecord, record_nonces
from .pm.ports import BalanceEntry, NonceVerdict
from .pm.ticket import SignedTicket

__all__ = ["NONCE_BUCKET_TTL", "KvBalanceStore", "KvNonceStore", "KvWinningTickets"]

NONCE_BUCKET_TTL = 1800.0
"""Seconds a nonce record outlives its last write: well past the params' 40-block life."""

MAX_ATTEMPTS = 64


async def _get(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    try:
        return await kv.get(key)
    except KeyNotFoundError:
        return None


async def _compare_and_set(kv: KeyValue, key: str, entry: KeyValue.Entry | None, value: bytes) -> bool:
    """Write ``value`` if ``key`` is still at ``entry``'s revision; False on a conflict."""
    try:
        if entry is None:
            await kv.create(key, value)
        else:
            await kv.update(key, value, last=entry.revision)
    except KeyWrongLastSequenceError:
        return False
    return True


class KvNonceStore:
    def __init__(self, kv: KeyValue, *, max_nonces: int = MAX_SENDER_NONCES) -> None:
        self._kv = kv
        self._limit = max_nonces
        self._decoder = msgspec.json.Decoder(NonceRecord)

    async def add(self, key: str, nonces: Sequence[int], expiration_block: int) -> list[NonceVerdict]:
        for _ in range(MAX_ATTEMPTS):
            entry = await _get(self._kv, key)
            record = self._decoder.decode(entry.value) if entry else NonceRecord(expiration_block)
            verdicts = record_nonces(record, nonces, self._limit)
            if NonceVerdict.ACCEPTED not in verdicts:
                return verdicts
            if await _compare_and_set(self._kv, key, entry, msgspec.json.encode(record)):
                return verdicts
        raise StoreContention(f"nonce record {key} kept changing; retry the payment")


class KvBalanceStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._decoder = msgspec.json.Decoder(BalanceEntry)

    async def get(self, key: str) -> BalanceEntry | None:
        entry = await _get(self._kv, key)
        return self._decoder.decode(entry.value) if entry else None

    async def update(self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry]) -> BalanceEntry:
        for _ in range(MAX_ATTEMPTS):
            entry = await _get(self._kv, key)
            new = change(self._decoder.decode(entry.value) if entry else None)
            if await _compare_and_set(self._kv, key, entry, msgspec.json.encode(new)):
                return new
        raise StoreContention(f"balance {key} kept changing; retry")


class KvWinningTickets:
    """Winning tickets keyed by ticket hash (hex): storing the same ticket twice keeps one."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._decoder = msgspec.json.Decoder(SignedTicket)

    async def store(self, ticket: SignedTicket) -> bool:
        return await _compare_and_set(self._kv, ticket.ticket_hash.hex(), None, msgspec.json.encode(ticket))

    async def pending(self) -> list[SignedTicket]:
        """Every stored ticket, in the order they were stored."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        entries = [e for e in [await _get(self._kv, key) for key in keys] if e is not None]
        entries.sort(key=lambda e: e.revision)
        return [self._decoder.decode(e.value) for e in entries]

    async def remove(self, ticket_hash: bytes) -> None:
        await self._kv.delete(ticket_hash.hex())
