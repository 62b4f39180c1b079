"""The payment ports over NATS JetStream KV, shared by every negotiator replica.

Each store takes an already-bound nats-py ``KeyValue``. Writes are
compare-and-set (``create`` when the key is new, ``update(last=revision)``
otherwise), retried on conflict, so one ticket sent to two replicas is credited
once. Values are msgspec JSON (wei amounts stay exact ints).

Bucket settings the caller should use (``js.create_key_value(bucket=..., ttl=...)``):

- nonces: ``ttl=NONCE_BUCKET_TTL`` (24 h), a backstop only. Records are dropped by
  L1 block: the chain service calls ``KvNonceStore.cleanup(last_seen_block)`` on
  each new block, which deletes the records whose params have expired
  (``pm.nonces.may_forget``). The validator refuses params quoted more than
  ``MAX_PARAMS_AGE`` (1 h) ago, so even if the chain view stalls for a day no
  ticket is accepted after its record could have hit the TTL.
- balances: ``ttl=BALANCE_IDLE_TTL`` (600 s), which is exactly the idle expiry.
- winning tickets: no ttl; the redeemer removes a ticket once it is settled.

Keys are bounded (``MAX_KEY_LENGTH``) before anything is sent: a key too long
for the protocol line makes nats-server drop the whole connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from .pm.errors import StoreContention
from .pm.nonces import MAX_SENDER_NONCES, NonceRecord, may_forget, record_nonces
from .pm.ports import BalanceEntry, NonceVerdict
from .pm.ticket import SignedTicket

__all__ = ["MAX_KEY_LENGTH", "NONCE_BUCKET_TTL", "KvBalanceStore", "KvNonceStore", "KvWinningTickets"]

NONCE_BUCKET_TTL = 24 * 3600.0
"""Seconds a nonce record outlives its last write: a backstop, far beyond MAX_PARAMS_AGE.

Records normally go by block (``KvNonceStore.cleanup``). This only bounds the
bucket if cleanup never runs; it must stay well above the validator's
``pm.MAX_PARAMS_AGE`` (1 h) plus any clock skew between replicas and the server.
"""

MAX_KEY_LENGTH = 256
"""Longest key a store sends; every key Baton builds is a fixed-length hex digest, 105 characters at most."""

MAX_ATTEMPTS = 64
WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a write whose expected last revision is stale."""


def _check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"KV key must be 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")
    return key


async def _get(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    try:
        return await kv.get(_check_key(key))
    except KeyNotFoundError:
        return None


async def _compare_and_set(kv: KeyValue, key: str, entry: KeyValue.Entry | None, value: bytes) -> bool:
    """Write ``value`` if ``key`` is still at ``entry``'s revision; False on a conflict."""
    try:
        if entry is None:
            await kv.create(_check_key(key), value)
        else:
            await kv.update(_check_key(key), value, last=entry.revision)
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

    async def cleanup(self, last_seen_block: int) -> int:
        """Delete the records whose params expired at or before ``last_seen_block``; returns how many.

        Each delete is conditional on the revision read, so a record written
        meanwhile is left for the next block's cleanup. Values that do not decode
        are left to the bucket's TTL.
        """
        expired: list[tuple[str, int]] = []
        watcher = await self._kv.watchall(ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the end of the current values
                    break
                try:
                    record = self._decoder.decode(entry.value)
                except msgspec.DecodeError:
                    continue
                if may_forget(record, last_seen_block):
                    expired.append((entry.key, entry.revision))
        finally:
            await watcher.stop()
        dropped = 0
        for key, revision in expired:
            try:
                await self._kv.delete(_check_key(key), last=revision)
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                continue
            dropped += 1
        return dropped


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
        await self._kv.delete(_check_key(ticket_hash.hex()))
