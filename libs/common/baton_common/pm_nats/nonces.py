"""The nonce store: records per recipientRandHash, their credit journal, and the state marker."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import msgspec
from nats.js.errors import APIError
from nats.js.kv import KeyValue

from ..pm.errors import NonceMarkAhead, NonceStateChanged
from ..pm.nonces import CreditEntry, NonceRecord, StateMarker, may_forget
from ..pm.recipient_rand import GENERATION_BYTES
from .core import (
    MAX_MARK_JUMP,
    STATE_KEY,
    STORE_DEADLINE,
    WRONG_LAST_SEQUENCE,
    _check_key,
    _get,
    _RmwStore,
    _with_backoff,
)

__all__ = ["KvNonceStore"]


class KvNonceStore(_RmwStore):
    """Nonce records per recipientRandHash, their credit journal, and the state marker."""

    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)
        self._record_decoder = msgspec.json.Decoder(NonceRecord)
        self._marker_decoder = msgspec.json.Decoder(StateMarker)
        self._generation: bytes | None = None
        self.cleanup_mark = 0
        """The cleanup mark as last read (it only rises)."""

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
        self.cleanup_mark = max(self.cleanup_mark, marker.cleanup_block)
        if marker.cleanup_block > expiration_block + MAX_MARK_JUMP:
            # Far past any params quoted now: a cleanup ran with a wrong block number (an L2
            # one?). Refusing every payment as expired would hide it; say it.
            raise NonceMarkAhead(
                f"the nonce cleanup mark ({marker.cleanup_block}) is more than {MAX_MARK_JUMP} blocks past "
                f"these params' expiration block ({expiration_block}); check the chain service's L1 block"
            )
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
        self.cleanup_mark = max(self.cleanup_mark, marker.cleanup_block)
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
