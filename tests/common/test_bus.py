"""The bus helper against a real nats-server: typed request/reply, errors, JetStream, KV, traces."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from nats.js.api import StreamConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from baton_common.bus import Bus
from baton_common.errors import (
    BadRequest,
    DecodeError,
    NoResponders,
    RemoteError,
    RequestTimeout,
)
from baton_common.schemas import Message
from tests.helpers import PrivateNats


class Ping(Message, frozen=True, kw_only=True, tag="test-ping.v1"):
    text: str
    wei: int = 0


class Pong(Message, frozen=True, kw_only=True, tag="test-pong.v1"):
    text: str
    trace_id: str = ""


class Other(Message, frozen=True, kw_only=True, tag="test-other.v1"):
    number: int


class Unpriced(BadRequest):
    code = "unpriced"
    status_code = 422


@pytest.fixture
async def bus(nats_url: str):
    b = await Bus.connect([nats_url], name="test")
    yield b
    await b.drain()


async def echo(req: Ping) -> Pong:
    ctx = trace.get_current_span().get_span_context()
    return Pong(text=req.text.upper(), trace_id=f"{ctx.trace_id:032x}" if ctx.is_valid else "")


async def test_typed_request_reply(bus: Bus, prefix: str) -> None:
    await bus.serve(f"{prefix}.echo", Ping, echo)
    reply = await bus.request(f"{prefix}.echo", Ping(text="hi", wei=2**100), Pong)
    assert reply.text == "HI"


async def test_nobody_listening_is_a_typed_error(bus: Bus, prefix: str) -> None:
    with pytest.raises(NoResponders) as err:
        await bus.request(f"{prefix}.nobody", Ping(text="x"), Pong, timeout=1)
    assert err.value.subject == f"{prefix}.nobody" and err.value.code == "no_responders"


async def test_slow_responder_times_out(bus: Bus, prefix: str) -> None:
    async def slow(req: Ping) -> Pong:
        await asyncio.sleep(1)
        return Pong(text="late")

    await bus.serve(f"{prefix}.slow", Ping, slow)
    with pytest.raises(RequestTimeout, match="within 0.2s"):
        await bus.request(f"{prefix}.slow", Ping(text="x"), Pong, timeout=0.2)


async def test_service_error_reaches_the_caller_with_its_code(bus: Bus, prefix: str) -> None:
    async def refuse(req: Ping) -> Pong:
        raise Unpriced("no price for this capability")

    await bus.serve(f"{prefix}.refuse", Ping, refuse)
    with pytest.raises(RemoteError) as err:
        await bus.request(f"{prefix}.refuse", Ping(text="x"), Pong)
    assert (err.value.status_code, err.value.code, err.value.description) == (
        422, "unpriced", "no price for this capability")


async def test_a_request_of_the_wrong_shape_gets_400(bus: Bus, prefix: str) -> None:
    await bus.serve(f"{prefix}.echo", Ping, echo)
    with pytest.raises(RemoteError) as err:
        await bus.request(f"{prefix}.echo", Other(number=1), Pong)
    assert err.value.status_code == 400 and err.value.code == "bad_request"


async def test_a_crashing_handler_gets_500_without_internals(bus: Bus, prefix: str) -> None:
    async def crash(req: Ping) -> Pong:
        raise KeyError("secret-internal-detail")

    await bus.serve(f"{prefix}.crash", Ping, crash)
    with pytest.raises(RemoteError) as err:
        await bus.request(f"{prefix}.crash", Ping(text="x"), Pong)
    assert err.value.status_code == 500 and "secret-internal-detail" not in str(err.value)
    # the responder survives and answers the next request
    await bus.serve(f"{prefix}.echo", Ping, echo)
    assert (await bus.request(f"{prefix}.echo", Ping(text="ok"), Pong)).text == "OK"


async def test_a_reply_of_the_wrong_shape_is_a_decode_error(bus: Bus, prefix: str) -> None:
    async def wrong(req: Ping) -> Other:
        return Other(number=3)

    await bus.serve(f"{prefix}.wrong", Ping, wrong)
    with pytest.raises(DecodeError, match="Pong"):
        await bus.request(f"{prefix}.wrong", Ping(text="x"), Pong)


async def test_instances_share_requests_through_the_queue_group(nats_url: str, prefix: str) -> None:
    a, b = await Bus.connect([nats_url], name="a"), await Bus.connect([nats_url], name="b")
    seen: list[str] = []

    def handler(name: str):
        async def h(req: Ping) -> Pong:
            seen.append(name)
            return Pong(text=name)
        return h

    await a.serve(f"{prefix}.work", Ping, handler("a"))
    await b.serve(f"{prefix}.work", Ping, handler("b"))
    await a.nc.flush()
    await b.nc.flush()
    for _ in range(40):
        await a.request(f"{prefix}.work", Ping(text="x"), Pong)
    assert len(seen) == 40 and set(seen) == {"a", "b"}
    await a.drain()
    await b.drain()


async def test_trace_context_travels_in_headers(bus: Bus, prefix: str) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    await bus.serve(f"{prefix}.echo", Ping, echo)
    with trace.get_tracer("test").start_as_current_span("gateway job") as span:
        reply = await bus.request(f"{prefix}.echo", Ping(text="x"), Pong)
    assert reply.trace_id == f"{span.get_span_context().trace_id:032x}"


async def test_durable_publish_is_deduplicated_by_message_id(bus: Bus, prefix: str) -> None:
    await bus.ensure_stream(StreamConfig(name=prefix, subjects=[f"{prefix}.jobs.>"]))
    await bus.ensure_stream(StreamConfig(name=prefix, subjects=[f"{prefix}.jobs.>"], max_msgs=100))  # update
    first = await bus.publish_durable(f"{prefix}.jobs.a", Ping(text="job"), msg_id="job-1")
    again = await bus.publish_durable(f"{prefix}.jobs.a", Ping(text="job"), msg_id="job-1")
    assert not first.duplicate and again.duplicate
    info = await bus.js.stream_info(prefix)
    assert info.state.messages == 1 and info.config.max_msgs == 100


async def test_kv_bucket_is_created_once_and_entries_expire(bus: Bus, prefix: str) -> None:
    kv = await bus.kv(prefix, ttl=1.0)
    await kv.put("k", b"v")
    again = await bus.kv(prefix, ttl=1.0)
    assert (await again.get("k")).value == b"v"
    await asyncio.sleep(1.6)
    with pytest.raises(Exception, match="not found|KeyNotFound|KeyDeleted"):
        await kv.get("k")


async def test_unexpected_close_is_fatal_but_drain_is_not(nats_url: str) -> None:
    reasons: list[str] = []
    b = await Bus.connect([nats_url], name="x", on_fatal=reasons.append)
    await b.drain()
    await asyncio.sleep(0.1)
    assert reasons == []
    c = await Bus.connect([nats_url], name="y", on_fatal=reasons.append)
    await c.nc.close()  # closed by something other than our drain
    await asyncio.sleep(0.1)
    assert reasons == ["NATS connection closed"]


async def test_first_connect_is_retried_until_the_server_comes(private_nats: PrivateNats) -> None:
    states: list[bool] = []
    connecting = asyncio.create_task(
        Bus.connect([f"nats://127.0.0.1:{private_nats.port}"], name="early", on_state=states.append, retry_wait=0.2)
    )
    await asyncio.sleep(1.0)
    assert not connecting.done()
    private_nats.start()
    b = await asyncio.wait_for(connecting, timeout=10)
    assert b.connected and states == [True]
    await b.drain()


async def test_reconnects_after_the_server_restarts(private_nats: PrivateNats, prefix: str) -> None:
    private_nats.start()
    fatal: list[str] = []
    states: list[bool] = []
    b = await Bus.connect([f"nats://127.0.0.1:{private_nats.port}"], name="r", retry_wait=0.2,
                          on_fatal=fatal.append, on_state=states.append)
    await b.serve(f"{prefix}.echo", Ping, echo)
    private_nats.stop()
    await asyncio.sleep(1.5)
    assert not b.connected
    private_nats.start()
    for _ in range(100):
        if b.connected:
            break
        await asyncio.sleep(0.1)
    assert b.connected and fatal == [] and states[0] is True and False in states and states[-1] is True
    await b.nc.flush()
    assert (await b.request(f"{prefix}.echo", Ping(text="back"), Pong)).text == "BACK"
    await b.drain()


def test_struct_encoding_is_json() -> None:
    assert msgspec.json.decode(msgspec.json.encode(Ping(text="a")))["type"] == "test-ping.v1"


async def test_slow_requests_are_answered_concurrently(bus: Bus, prefix: str) -> None:
    async def slow(req: Ping) -> Pong:
        await asyncio.sleep(0.5)
        return Pong(text=req.text)

    await bus.serve(f"{prefix}.slow", Ping, slow)
    replies = await asyncio.gather(
        *(bus.request(f"{prefix}.slow", Ping(text=str(i)), Pong, timeout=2) for i in range(8))
    )
    assert [r.text for r in replies] == [str(i) for i in range(8)]  # 8 × 0.5 s one by one would time out


async def test_drain_while_nats_is_down_closes_without_error(private_nats: PrivateNats) -> None:
    private_nats.start()
    fatal: list[str] = []
    b = await Bus.connect([private_nats.url], name="d", retry_wait=0.2, on_fatal=fatal.append)
    private_nats.stop()
    for _ in range(50):
        if not b.connected:
            break
        await asyncio.sleep(0.1)
    assert not b.connected
    await asyncio.wait_for(b.drain(), 10)
    assert b.nc.is_closed and fatal == []


async def test_drain_subscriptions_waits_for_handlers_in_flight(bus: Bus, prefix: str, nats_url: str) -> None:
    done: list[str] = []

    async def slow(req: Ping) -> Pong:
        await asyncio.sleep(0.5)
        done.append(req.text)
        return Pong(text=req.text)

    await bus.serve(f"{prefix}.slow", Ping, slow)
    caller = await Bus.connect([nats_url], name="caller")
    pending = asyncio.create_task(caller.request(f"{prefix}.slow", Ping(text="x"), Pong, timeout=3))
    await asyncio.sleep(0.2)
    await bus.drain_subscriptions(timeout=3)
    assert done == ["x"] and (await pending).text == "x"
    with pytest.raises(NoResponders):  # no longer subscribed
        await caller.request(f"{prefix}.slow", Ping(text="y"), Pong, timeout=1)
    await caller.drain()


async def test_read_bucket_sees_every_key_while_keys_are_rewritten(bus: Bus, prefix: str) -> None:
    """Heartbeats rewrite their keys every 2 s: a status read must not lose a service that is up."""
    from baton_common.bus import read_bucket

    kv = await bus.kv(prefix)
    names = [f"svc-{i}" for i in range(40)]
    for name in names:
        await kv.put(name, b"up")
    await kv.put("gone", b"x")
    await kv.delete("gone")
    stop = asyncio.Event()

    async def rewrite() -> None:
        n = 0
        while not stop.is_set():
            await kv.put(names[n % len(names)], b"up")
            n += 1

    writers = [asyncio.create_task(rewrite()) for _ in range(4)]
    try:
        for _ in range(25):
            seen = await read_bucket(kv)
            assert sorted(seen) == sorted(names)
    finally:
        stop.set()
        await asyncio.gather(*writers)
