"""What every payment store on NATS KV shares: key checks, compare-and-set, backoff, per-key locks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import nats.errors
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError, ServiceUnavailableError
from nats.js.kv import KeyValue

from ..pm.errors import StoreContention, StoreValueTooLarge

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_MARK_JUMP",
    "MAX_VALUE_BYTES",
    "NONCE_BUCKET_TTL",
    "STATE_KEY",
    "STORE_DEADLINE",
    "WRONG_LAST_SEQUENCE",
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
