"""Nonce records are forgotten by L1 block (go-livepeer's senderNoncesCleanupLoop), in every store."""

from __future__ import annotations

import nats
import pytest

from baton_common.pm import MemoryNonceStore, NonceRecord, NonceStateChanged, NonceVerdict, may_forget
from baton_common.pm_nats import NONCE_BUCKET_TTL, KvNonceStore

from .pm_stores import add

A, S = NonceVerdict.ACCEPTED, NonceVerdict.SEEN


def test_a_record_may_be_forgotten_once_the_chain_reaches_its_expiration_block() -> None:
    record = NonceRecord(expiration_block=1000, nonces=[1, 2])
    assert not may_forget(record, 998)
    assert not may_forget(record, 999)
    assert may_forget(record, 1000)  # expirationBlock <= last seen block: the params are expired
    assert may_forget(record, 10**9)


@pytest.fixture(params=["memory", "nats"])
async def store(request: pytest.FixtureRequest, nats_url: str, prefix: str):
    """The same cases against the single-process store and the NATS KV one."""
    if request.param == "memory":
        yield MemoryNonceStore()
        return
    nc = await nats.connect(nats_url)
    yield KvNonceStore(await nc.jetstream().create_key_value(bucket=f"{prefix}_nonces", ttl=NONCE_BUCKET_TTL))
    await nc.close()


async def test_cleanup_drops_exactly_the_records_of_expired_params(store) -> None:
    assert await store.cleanup(10) == 0  # nothing to drop in an empty store
    assert await add(store, "early", [1, 2], 100) == [A, A]
    assert await add(store, "late", [1], 200) == [A]
    assert await store.cleanup(99) == 0
    assert await add(store, "early", [1], 100) == [S]
    assert await store.cleanup(100) == 1
    assert await add(store, "late", [1], 200) == [S]  # still guarded
    # Forgotten: a record re-created at or below the cleanup mark proves nothing.
    with pytest.raises(NonceStateChanged):
        await add(store, "early", [1], 100)
    assert await store.cleanup(150) == 1  # the record just re-created for "early"
    assert await store.cleanup(150) == 0
    assert await store.cleanup(200) == 1
    with pytest.raises(NonceStateChanged):
        await add(store, "late", [1], 200)


async def test_a_record_of_another_generation_proves_nothing(store) -> None:
    current = await store.generation()
    assert len(current) == 16 and await store.generation() == current

    def change(record: NonceRecord) -> NonceRecord:
        record.nonces.append(1)
        return record

    with pytest.raises(NonceStateChanged):
        await store.update("k", 100, bytes(16), change)


def test_the_nonce_bucket_ttl_is_a_backstop_far_beyond_the_params_age_limit() -> None:
    from baton_common.pm import MAX_PARAMS_AGE

    # The validator refuses params older than MAX_PARAMS_AGE; the bucket must keep a
    # record at least that long after its last write, with room for clock skew.
    assert NONCE_BUCKET_TTL >= 24 * 3600 and NONCE_BUCKET_TTL >= 10 * MAX_PARAMS_AGE
