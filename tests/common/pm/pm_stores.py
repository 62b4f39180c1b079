"""Helpers for driving the nonce stores directly, as the validator does."""

from __future__ import annotations

from collections.abc import Sequence

from baton_common.pm import NonceRecord, NonceStore, NonceVerdict
from baton_common.pm.nonces import record_nonces


async def add(
    store: NonceStore, key: str, nonces: Sequence[int], expiration_block: int, limit: int = 600
) -> list[NonceVerdict]:
    """Record ``nonces`` under ``key`` in the store's current generation; the verdicts."""
    verdicts: list[NonceVerdict] = []

    def change(record: NonceRecord) -> NonceRecord | None:
        verdicts[:] = record_nonces(record, nonces, limit)
        return record if NonceVerdict.ACCEPTED in verdicts else None

    await store.update(key, expiration_block, await store.generation(), change)
    return verdicts
