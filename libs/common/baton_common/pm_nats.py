"""The payment ports over NATS JetStream KV, shared by every negotiator replica.

Each store takes an already-bound nats-py ``KeyValue`` (bind them with the
declared bucket configurations, which are checked on bind). Writes are
compare-and-set (``create`` when the key is new, ``update(last=revision)``
otherwise). Within a process, writes to one key are serialized; across
processes a conflict is retried with jittered exponential backoff until a
deadline. A timeout is retried the same way: the next read shows whether the
write landed (``change`` is re-applied to what is there, and the payment
stores' changes recognise their own journal entries and credit ids), so a
write whose ack was lost is neither lost nor applied twice.

Buckets (see ``baton_common.schemas`` for the declarations):

- nonces: ``ttl=NONCE_BUCKET_TTL`` (24 h), a backstop only. Records are dropped by
  L1 block: the chain service calls ``KvNonceStore.cleanup(block)`` on each new
  block. The bucket also holds the state marker (``STATE_KEY``: the generation
  and the cleanup mark), so the generation is lost exactly when the records are.
  Cleanup rewrites the marker on every block; if it lapses (24 h with no
  cleanup), a new generation is made, which only voids params long expired.
- balances: ``ttl=BALANCE_IDLE_TTL`` (600 s), which is exactly the idle expiry,
  on the server's clock (``KvBalanceStore.expires_idle``).
- winning tickets: no ttl; one record per ticket hash, pending then settled, never deleted.

Keys are bounded (``MAX_KEY_LENGTH``) before anything is sent: a key too long
for the protocol line makes nats-server drop the whole connection.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import msgspec
import nats.errors
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError, ServiceUnavailableError
from nats.js.kv import KeyValue

from .pm.errors import NonceStateChanged, StoreContention, StoreValueTooLarge
from .pm.nonces import CreditEntry, NonceRecord, StateMarker, may_forget
from .pm.ports import BalanceEntry
from .pm.recipient_rand import GENERATION_BYTES
from .pm.ticket import SignedTicket
from .pm.winners import WinnerPending, WinnerRecord, WinnerSettled, settle

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_MARK_JUMP",
    "MAX_VALUE_BYTES",
    "NONCE_BUCKET_TTL",
    "STATE_KEY",
    "STORE_DEADLINE",
    "KvBalanceStore",
    "KvNonceStore",
    "KvWinningTickets",
]

NONCE_BUCKET_TTL = 24 * 3600.0
"""Seconds a nonce record outlives its last write: a backstop, far beyond MAX_PARAMS_AGE.

Records normally go by block (``KvNonceStore.cleanup``). This only bounds the
bucket if cleanup never runs; it must stay well above the validator's
``pm.MAX_PARAMS_AGE`` (1 h) plus any clock skew between replicas and the server.
"""

STATE_KEY = "_state"
"""The nonce bucket's state marker: generation and cleanup mark (never a recipientRandHash)."""

MAX_KEY_LENGTH = 256
"""Longest key a store sends; every key Baton builds is a fixed-length hex digest, 105 characters at most."""

MAX_MARK_JUMP = 100_000
"""Most L1 blocks (about two weeks) one cleanup may raise the cleanup mark by."""

MAX_VALUE_BYTES = 256 * 1024
"""Largest value a store writes: well under NATS's 1 MB max payload, headers included (the buckets
declare it as their max value size, so the server refuses a larger one instead of closing the connection)."""

STORE_DEADLINE = 10.0
"""Seconds a store keeps retrying one read-modify-write (conflicts, timeouts) before StoreContention."""

WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a write whose expected last revision is stale."""

_BACKOFF_FIRST = 0.002
_BACKOFF_CAP = 0.25

_RETRYABLE = (nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError)
"""A request that may or may not have reached the server: read again and decide."""

T = TypeVar("T")


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
    except APIError as exc:
        if exc.err_code != WRONG_LAST_SEQUENCE:
            raise
        return False
    return True


class _KeyLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


async def _with_backoff(what: str, deadline: float, attempt_once: Callable[[], Awaitable[tuple[bool, T]]]) -> T:
    """Run ``attempt_once`` until it reports done, backing off with full jitter; StoreContention at the deadline."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    delay = _BACKOFF_FIRST
    last_error: BaseException | None = None
    while True:
        try:
            done, result = await attempt_once()
            if done:
                return result
        except _RETRYABLE as exc:
            last_error = exc
        if loop.time() >= give_up:
            cause = f" (last error: {type(last_error).__name__})" if last_error else ""
            raise StoreContention(f"{what} could not be written within {deadline:g} s{cause}; retry")
        await asyncio.sleep(random.uniform(0, delay))
        delay = min(delay * 2, _BACKOFF_CAP)


class _RmwStore:
    """Read-modify-write of msgspec values under compare-and-set, serialized per key in this process."""

    def __init__(self, kv: KeyValue, deadline: float) -> None:
        self._kv = kv
        self._deadline = deadline
        self._locks = _KeyLocks()

    async def _rmw(
        self,
        key: str,
        decode: Callable[[bytes], T],
        encode: Callable[[T], bytes],
        change: Callable[[T | None], T | None],
        what: str,
    ) -> T | None:
        """Apply ``change`` to the value under ``key`` until a compare-and-set holds; the value as it stands."""
        written: list[bytes] = []

        async def once() -> tuple[bool, T | None]:
            entry = await _get(self._kv, key)
            if entry is not None and written and entry.value == written[-1]:
                return True, decode(entry.value)  # our earlier write landed; its ack was lost
            current = decode(entry.value) if entry is not None and entry.value else None
            new = change(current)
            if new is None:
                return True, current
            value = encode(new)
            if len(value) > MAX_VALUE_BYTES:
                raise StoreValueTooLarge(f"{what} would be {len(value)} bytes, above {MAX_VALUE_BYTES}; not written")
            try:
                return await _compare_and_set(self._kv, key, entry, value), new
            except _RETRYABLE:
                written.append(value)  # it may have landed: the next read tells
                raise

        async with self._locks.hold(key):
            return await _with_backoff(what, self._deadline, once)


class KvNonceStore(_RmwStore):
    """Nonce records per recipientRandHash, their credit journal, and the state marker."""

    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)
        self._record_decoder = msgspec.json.Decoder(NonceRecord)
        self._marker_decoder = msgspec.json.Decoder(StateMarker)
        self._generation: bytes | None = None

    async def _marker(self) -> StateMarker | None:
        async def once() -> tuple[bool, StateMarker | None]:
            entry = await _get(self._kv, STATE_KEY)
            return True, self._marker_decoder.decode(entry.value) if entry and entry.value else None

        return await _with_backoff("the nonce state marker", self._deadline, once)

    async def generation(self) -> bytes:
        """The nonce state's generation, made (once, by whichever replica is first) if there is none."""
        if self._generation is None:
            marker = await self._marker() or await self._new_marker(0)
            self._generation = bytes.fromhex(marker.generation)
        return self._generation

    async def _new_marker(self, cleanup_block: int) -> StateMarker:
        """Create the marker of a state that starts empty; the one already there if another replica won."""
        fresh = StateMarker(os.urandom(GENERATION_BYTES).hex(), cleanup_block)

        def create(current: StateMarker | None) -> StateMarker | None:
            return None if current is not None else fresh

        marker = await self._rmw(
            STATE_KEY, self._marker_decoder.decode, msgspec.json.encode, create, "the nonce state marker"
        )
        assert marker is not None
        return marker

    async def update(
        self,
        key: str,
        expiration_block: int,
        generation: bytes,
        change: Callable[[NonceRecord], NonceRecord | None],
    ) -> NonceRecord:
        if key == STATE_KEY:
            raise ValueError(f"{STATE_KEY} is the state marker, not a nonce record")

        def apply(current: NonceRecord | None) -> NonceRecord | None:
            return change(current if current is not None else NonceRecord(expiration_block))

        record = await self._rmw(key, self._record_decoder.decode, msgspec.json.encode, apply, f"nonce record {key}")
        await self._confirm(generation, expiration_block)
        return record if record is not None else NonceRecord(expiration_block)

    async def _confirm(self, generation: bytes, expiration_block: int) -> None:
        """Raise NonceStateChanged unless the state is still ``generation``'s and above the cleanup mark.

        Read after the write: if the bucket was lost and re-created before the
        write, the marker read now is the new one (or none), and the write
        proves nothing; if only after it, the write went into the old state.
        """
        marker = await self._marker()
        if marker is None:
            marker = await self._new_marker(0)
        current = bytes.fromhex(marker.generation)
        self._generation = current
        if current != generation or expiration_block <= marker.cleanup_block:
            raise NonceStateChanged()

    async def cleanup(
        self,
        last_seen_block: int,
        complete: Callable[[list[CreditEntry]], Awaitable[None]] | None = None,
    ) -> int:
        """Forget the records whose params expired at or before ``last_seen_block``; returns how many.

        In order: the records the mark passes now (their params expire above the
        current mark, at or below ``last_seen_block``) hand their journal entries
        still owed to ``complete``; then the mark goes up, but never past a record
        whose completion failed (it is tried again next time); then the records
        at or below the mark are deleted, each delete conditional on the revision
        read, so a record written meanwhile waits for the next cleanup. A block
        more than ``MAX_MARK_JUMP`` above the current mark is refused: a wrong
        block number (an L2 one) would make every live params look expired.
        Values that do not decode are left to the bucket's TTL.
        """
        current = await self._marker()
        if current is not None and current.cleanup_block and last_seen_block > current.cleanup_block + MAX_MARK_JUMP:
            raise ValueError(
                f"nonce cleanup to block {last_seen_block} is more than {MAX_MARK_JUMP} blocks past the mark "
                f"({current.cleanup_block}): refusing; is it an L1 block number?"
            )
        before = current.cleanup_block if current is not None else 0
        generation = current.generation if current is not None else ""
        expiring: list[tuple[str, int, NonceRecord]] = []
        watcher = await self._kv.watchall(ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the end of the current values
                    break
                if entry.key == STATE_KEY or not entry.value:
                    continue
                try:
                    record = self._record_decoder.decode(entry.value)
                except msgspec.DecodeError:
                    continue
                if may_forget(record, last_seen_block):
                    expiring.append((entry.key, entry.revision or 0, record))
        finally:
            await watcher.stop()
        mark = last_seen_block
        for _, _, record in expiring:
            owed = record.expiration_block > before and record.generation == generation and record.credits
            if complete is not None and owed:
                try:
                    await complete(list(record.credits.values()))
                except Exception:  # noqa: BLE001 (any failure: keep the record, and the mark below it)
                    mark = min(mark, record.expiration_block - 1)

        def raise_mark(marker: StateMarker | None) -> StateMarker:
            if marker is None:  # the state was lost or lapsed: it starts again, in a new generation
                return StateMarker(os.urandom(GENERATION_BYTES).hex(), mark)
            return StateMarker(marker.generation, max(marker.cleanup_block, mark))

        marker = await self._rmw(
            STATE_KEY, self._marker_decoder.decode, msgspec.json.encode, raise_mark, "the nonce state marker"
        )
        assert marker is not None
        self._generation = bytes.fromhex(marker.generation)
        dropped = 0
        for key, revision, record in expiring:
            if record.expiration_block > marker.cleanup_block:
                continue
            try:
                await self._kv.delete(_check_key(key), last=revision)
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                continue
            dropped += 1
        return dropped


class KvBalanceStore(_RmwStore):
    """Balances by key; the bucket's TTL (``BALANCE_IDLE_TTL``) is their idle expiry, on the server's clock."""

    expires_idle = True
    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)
        self._decoder = msgspec.json.Decoder(BalanceEntry)

    async def get(self, key: str) -> BalanceEntry | None:
        entry = await _get(self._kv, key)
        return self._decoder.decode(entry.value) if entry and entry.value else None

    async def update(
        self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry | None]
    ) -> BalanceEntry | None:
        return await self._rmw(key, self._decoder.decode, msgspec.json.encode, change, f"balance {key}")


_record_union_decoder = msgspec.json.Decoder(WinnerRecord)
_legacy_ticket_decoder = msgspec.json.Decoder(SignedTicket)


def _decode_winner(value: bytes) -> WinnerRecord:
    """A winner record; a bare SignedTicket (as stored before records) reads as pending."""
    try:
        return _record_union_decoder.decode(value)
    except msgspec.ValidationError:
        return WinnerPending(_legacy_ticket_decoder.decode(value))


class KvWinningTickets(_RmwStore):
    """One record per ticket hash (hex): created pending, settled by the redeemer, never deleted."""

    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)

    async def store(self, ticket: SignedTicket) -> bool:
        key = ticket.ticket_hash.hex()
        created: list[bool] = []

        def create(current: WinnerRecord | None) -> WinnerRecord | None:
            created.append(current is None)
            return WinnerPending(ticket) if current is None else None

        await self._rmw(key, _decode_winner, msgspec.json.encode, create, f"winning ticket {key}")
        # The last decision stands: a create whose ack was lost reads back as ours, with no new decision.
        return created[-1]

    async def pending(self) -> list[SignedTicket]:
        """Every pending ticket, in the order they were stored."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        entries = [e for e in [await _get(self._kv, key) for key in keys] if e is not None and e.value]
        entries.sort(key=lambda e: e.revision or 0)
        records = [_decode_winner(e.value) for e in entries if e.value]
        return [r.ticket for r in records if isinstance(r, WinnerPending)]

    async def settle(self, ticket_hash: bytes, result: WinnerSettled) -> WinnerRecord:
        key = ticket_hash.hex()

        def apply(current: WinnerRecord | None) -> WinnerRecord | None:
            if current is None:
                raise KeyError(f"no winning ticket {key}")
            new = settle(current, result)
            return None if new is current else new

        record = await self._rmw(key, _decode_winner, msgspec.json.encode, apply, f"winning ticket {key}")
        assert record is not None
        return record

    async def record(self, ticket_hash: bytes) -> WinnerRecord | None:
        entry = await _get(self._kv, ticket_hash.hex())
        return _decode_winner(entry.value) if entry and entry.value else None
