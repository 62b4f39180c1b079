"""Every declared bucket, stream and object store, created from its declaration on a real nats-server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from baton_common.bus import Bus
from baton_common.schemas.audit import AUDIT
from baton_common.schemas.jobs import BODIES, INLINE_BODY_MAX
from baton_common.schemas.payments import WINNERS
from baton_common.schemas.registry import BUCKETS, OBJECT_STORES, STORES, STREAMS
from baton_common.schemas.storage import KvSpec
from baton_common.streams import StoreMismatch, differences, ensure_all, ensure_kv, ensure_object_store, ensure_stream
from tests.helpers import PrivateNats


@pytest.fixture
async def empty_js(private_nats: PrivateNats) -> AsyncIterator[nats.js.JetStreamContext]:
    """JetStream on a server of this test's own: the real names, no bucket yet."""
    private_nats.start()
    nc = await nats.connect(private_nats.url)
    yield nc.jetstream()
    await nc.close()


async def test_every_store_is_created_from_its_declaration(empty_js: nats.js.JetStreamContext) -> None:
    await ensure_all(empty_js, STORES)
    for spec in STORES:
        info = await empty_js.stream_info(spec.stream)
        assert differences(spec, info.config) == [], spec.name
    await ensure_all(empty_js, STORES)  # binding what exists, as configured, is quiet
    names = {s.config.name for s in await empty_js.streams_info()}
    assert names == {spec.stream for spec in STORES}


async def test_the_declarations_are_the_ones_the_services_rely_on(empty_js: nats.js.JetStreamContext) -> None:
    await ensure_all(empty_js, STORES)
    winners = await empty_js.stream_info(WINNERS.stream)
    assert winners.config.max_age in (None, 0) and winners.config.storage == StorageType.FILE
    audit = await empty_js.stream_info(AUDIT.stream)
    assert audit.config.subjects == ["baton.audit.>"] and audit.config.max_age >= 365 * 24 * 3600
    bodies = await empty_js.stream_info(BODIES.stream)
    assert bodies.config.storage == StorageType.MEMORY and bodies.config.max_age == BODIES.ttl


async def test_a_bucket_configured_otherwise_is_refused_by_name(empty_js: nats.js.JetStreamContext) -> None:
    spec = next(b for b in BUCKETS if b.ttl)
    await empty_js.create_key_value(bucket=spec.bucket, ttl=spec.ttl * 2, history=spec.history + 1)
    with pytest.raises(StoreMismatch) as err:
        await ensure_kv(empty_js, spec)
    message = str(err.value)
    assert spec.bucket in message and "max_age" in message and "history" in message
    assert "refusing to start" in message


async def test_a_stream_configured_otherwise_is_refused(empty_js: nats.js.JetStreamContext) -> None:
    spec = STREAMS[0]
    await empty_js.add_stream(StreamConfig(name=spec.stream, subjects=list(spec.subjects), max_age=60.0))
    with pytest.raises(StoreMismatch, match=f"stream '{spec.stream}'.*max_age"):
        await ensure_stream(empty_js, spec)


async def test_an_object_store_on_other_storage_is_refused(empty_js: nats.js.JetStreamContext) -> None:
    spec = OBJECT_STORES[0]
    await empty_js.create_object_store(spec.bucket)  # file storage, no TTL
    with pytest.raises(StoreMismatch, match=f"object store '{spec.bucket}'.*storage: declared memory, found file"):
        await ensure_object_store(empty_js, spec)


async def test_bus_bind_checks_and_bus_kv_keeps_its_old_call(nats_url: str, prefix: str) -> None:
    bus = await Bus.connect([nats_url], name="t")
    try:
        spec = KvSpec(bucket=prefix, key="k", ttl=5.0, writer="t", readers=(), schema="")
        kv = await bus.bind(spec)
        await kv.put("k", b"v")
        assert (await (await bus.kv(prefix, ttl=5.0)).get("k")).value == b"v"
        with pytest.raises(StoreMismatch, match=prefix):
            await bus.kv(prefix, ttl=6.0)
        with pytest.raises(StoreMismatch, match="storage: declared memory, found file"):
            await bus.bind(msgspec.structs.replace(spec, storage="memory"))
    finally:
        await bus.drain()


async def test_a_segment_larger_than_the_max_payload_crosses_the_body_store(empty_js: nats.js.JetStreamContext) -> None:
    store = await ensure_object_store(empty_js, BODIES)
    body = os.urandom(3 * 1024 * 1024)  # three times nats-server's 1 MB max payload
    assert len(body) > INLINE_BODY_MAX
    await store.put("job-1/in", body)
    got = await store.get("job-1/in")
    assert hashlib.sha256(got.data).digest() == hashlib.sha256(body).digest()
    await store.delete("job-1/in")
