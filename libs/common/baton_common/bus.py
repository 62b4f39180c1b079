"""The one NATS helper every service uses.

- The first connect and every reconnect are retried forever. If the client
  closes for any reason but our own drain, ``on_fatal`` runs so the process
  exits non-zero and its supervisor (``baton up`` or Docker) restarts it.
- Typed request/reply with msgspec Structs; "no responders", time-outs and
  responder errors become :mod:`baton_common.errors` classes.
- JetStream streams, de-duplicated publishes, KV buckets and object stores,
  bound from their declarations (:meth:`Bus.bind`): created when absent,
  refused at start when they exist configured otherwise.
- Handlers run concurrently (up to ``max_in_flight`` per bus), and a
  graceful stop drains the subscriptions and waits for handlers in flight.
- The W3C trace context (``traceparent``) travels in message headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, overload

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import streams
from .errors import ConfigError, DecodeError, NoResponders, NotConnected, RemoteError, RequestTimeout, ServiceError
from .schemas import decode, encode
from .schemas.storage import KvSpec, ObjectStoreSpec, StreamSpec

__all__ = ["Bus", "bucket_keys", "read_bucket", "read_bucket_as"]

log = logging.getLogger("baton.bus")
tracer = trace.get_tracer("baton.bus")

R = TypeVar("R", bound=msgspec.Struct)
Q = TypeVar("Q", bound=msgspec.Struct)

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
BATON_CODE_HEADER = "Baton-Error-Code"


class Bus:
    """A connected NATS client with Baton's conventions. Build it with :meth:`connect`."""

    def __init__(self, nc: nats.NATS, name: str, *, max_in_flight: int = 256) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.name = name
        self.draining = False
        self.on_fatal: Callable[[str], None] | None = None
        self.on_state: Callable[[bool], None] | None = None
        self._failures = 0
        self._subs: list[Subscription] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)

    # -- connection ------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        servers: Sequence[str],
        *,
        name: str,
        on_fatal: Callable[[str], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        retry_wait: float = 2.0,
        connect_timeout: float = 2.0,
        drain_timeout: float = 5.0,
    ) -> Bus:
        """Connect, retrying every ``retry_wait`` seconds, forever, until a server answers.

        nats-py retries the first connect itself when reconnects are unlimited;
        each failed attempt is logged through the error callback.
        """
        if not servers:
            raise ConfigError("no NATS server to connect to (BATON_NATS_URL is empty)")
        bus = cls(nats.NATS(), name)
        bus.on_fatal, bus.on_state = on_fatal, on_state
        await bus.nc.connect(
            servers=list(servers),
            name=name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=retry_wait,
            connect_timeout=connect_timeout,
            drain_timeout=drain_timeout,
            disconnected_cb=bus._disconnected,
            reconnected_cb=bus._reconnected,
            closed_cb=bus._closed,
            error_cb=bus._error,
        )
        bus._failures = 0
        log.info("connected to NATS", extra={"server": bus.nc.connected_url.netloc if bus.nc.connected_url else ""})
        if on_state:
            on_state(True)
        return bus

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def drain_subscriptions(self, timeout: float = 5.0) -> None:
        """Stop taking messages, then wait up to ``timeout`` s for the handlers in flight."""
        for sub in self._subs:
            try:
                await sub.drain()
            except nats.errors.Error:
                pass  # not connected: nothing more will arrive anyway
        self._subs.clear()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=timeout)

    async def drain(self) -> None:
        """Finish in-flight work and close; this closing is not fatal.

        While NATS is unreachable there is nothing to drain: the client is closed.
        """
        self.draining = True
        if self.nc.is_closed:
            return
        try:
            if self.nc.is_connected:
                await self.nc.drain()
                return
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("NATS drain did not finish; closing", extra={"error": repr(exc)})
        await self.nc.close()

    async def _disconnected(self) -> None:
        if not self.draining:
            log.warning("disconnected from NATS; reconnecting")
        if self.on_state:
            self.on_state(False)

    async def _reconnected(self) -> None:
        self._failures = 0
        log.info("reconnected to NATS")
        if self.on_state:
            self.on_state(True)

    async def _closed(self) -> None:
        if self.on_state:
            self.on_state(False)
        if not self.draining:
            log.error("NATS connection closed unexpectedly")
            if self.on_fatal:
                self.on_fatal("NATS connection closed")

    async def _error(self, exc: Exception) -> None:
        if isinstance(exc, (OSError, asyncio.TimeoutError, nats.errors.NoServersError)):
            self._failures += 1
            log.warning("NATS not reachable, retrying", extra={"attempt": self._failures, "error": str(exc) or repr(exc)})
        else:
            log.warning("NATS client error", extra={"error": repr(exc)})

    # -- core messaging ----------------------------------------------------

    async def publish(self, subject: str, msg: msgspec.Struct) -> None:
        await self.nc.publish(subject, encode(msg), headers=_trace_headers())

    async def request(self, subject: str, msg: msgspec.Struct, reply: type[R], *, timeout: float = 2.0) -> R:
        """Send ``msg`` and decode the reply as ``reply``.

        Raises NoResponders, RequestTimeout, RemoteError (the responder raised),
        DecodeError (the reply does not match ``reply``) or NotConnected.
        """
        with tracer.start_as_current_span(f"{subject} request", kind=SpanKind.CLIENT) as span:
            span.set_attribute("messaging.destination.name", subject)
            try:
                resp = await self.nc.request(subject, encode(msg), timeout=timeout, headers=_trace_headers())
            except nats.errors.NoRespondersError:
                raise NoResponders(subject) from None
            except nats.errors.TimeoutError:
                raise RequestTimeout(subject, timeout) from None
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError) as exc:
                raise NotConnected(f"cannot send on {subject!r}: {type(exc).__name__}") from None
            headers = resp.headers or {}
            if ERROR_CODE_HEADER in headers:
                span.set_status(Status(StatusCode.ERROR))
                raise RemoteError(
                    subject,
                    status=int(headers.get(ERROR_CODE_HEADER, "500") or 500),
                    code=headers.get(BATON_CODE_HEADER, "service_error"),
                    description=headers.get(ERROR_HEADER, ""),
                )
            try:
                return decode(resp.data, reply)
            except msgspec.ValidationError as exc:
                raise DecodeError(f"reply on {subject!r} is not a {reply.__name__}: {exc}") from None

    async def serve(
        self,
        subject: str,
        request: type[Q],
        handler: Callable[[Q], Awaitable[msgspec.Struct]],
        *,
        queue: str = "q",
    ) -> Subscription:
        """Answer requests on ``subject`` with ``handler``; instances share the queue group.

        A request that does not decode gets a 400 error reply; a
        :class:`ServiceError` its own code; anything else a 500.
        """

        async def on_msg(msg: Msg) -> None:
            ctx = propagate.extract(msg.headers or {})
            with tracer.start_as_current_span(f"{subject} process", context=ctx, kind=SpanKind.SERVER) as span:
                span.set_attribute("messaging.destination.name", subject)
                try:
                    req = decode(msg.data, request)
                    resp = await handler(req)
                except msgspec.ValidationError as exc:
                    await self._reply_error(msg, 400, "bad_request", f"bad {request.__name__}: {exc}")
                except ServiceError as exc:
                    await self._reply_error(msg, exc.status_code, exc.code, exc.message)
                except Exception:
                    log.exception("handler failed", extra={"subject": subject})
                    span.set_status(Status(StatusCode.ERROR))
                    await self._reply_error(msg, 500, "internal", "internal error")
                else:
                    if msg.reply:
                        await self.nc.publish(msg.reply, encode(resp))

        return await self._subscribe(subject, queue, on_msg)

    async def subscribe(
        self, subject: str, message: type[Q], handler: Callable[[Q], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        """Call ``handler`` for each message on ``subject``; undecodable ones are logged and dropped."""

        async def on_msg(msg: Msg) -> None:
            ctx = propagate.extract(msg.headers or {})
            with tracer.start_as_current_span(f"{subject} process", context=ctx, kind=SpanKind.CONSUMER):
                try:
                    await handler(decode(msg.data, message))
                except msgspec.ValidationError as exc:
                    log.warning("dropped a message that does not decode", extra={"subject": msg.subject, "error": str(exc)})
                except Exception:
                    log.exception("subscriber failed", extra={"subject": msg.subject})

        return await self._subscribe(subject, queue, on_msg)

    async def _subscribe(self, subject: str, queue: str, on_msg: Callable[[Msg], Awaitable[None]]) -> Subscription:
        """Subscribe with each message handled in its own task, at most ``max_in_flight`` at once.

        nats-py awaits a callback before delivering the next message; here the
        callback only waits for a free slot, so one slow request does not hold
        up the others, and a full bus pushes back on the subscription.
        """

        async def dispatch(msg: Msg) -> None:
            await self._slots.acquire()
            task = asyncio.create_task(on_msg(msg))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

        sub = await self.nc.subscribe(subject, queue=queue, cb=dispatch)
        self._subs.append(sub)
        return sub

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def _reply_error(self, msg: Msg, status: int, code: str, description: str) -> None:
        if msg.reply:
            headers = {ERROR_HEADER: description, ERROR_CODE_HEADER: str(status), BATON_CODE_HEADER: code}
            await self.nc.publish(msg.reply, b"", headers=headers)

    # -- JetStream ---------------------------------------------------------

    async def ensure_stream(self, config: StreamConfig) -> None:
        """Create the stream, or update it to ``config`` if it exists."""
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(config)

    async def publish_durable(self, subject: str, msg: msgspec.Struct, *, msg_id: str | None = None) -> PubAck:
        """Publish to a JetStream stream; the same ``msg_id`` within the stream's window is stored once."""
        headers = _trace_headers()
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        return await self.js.publish(subject, encode(msg), headers=headers)

    async def kv(self, bucket: str, *, ttl: float | None = None, history: int = 1, description: str = "") -> KeyValue:
        """Bind the KV bucket, creating it with ``ttl`` (seconds) and ``history`` if it does not exist.

        An existing bucket with another TTL, history or storage raises
        :class:`~baton_common.streams.StoreMismatch`. Prefer :meth:`bind` with
        the bucket's declaration from :mod:`baton_common.schemas`.
        """
        spec = KvSpec(bucket=bucket, key="", ttl=ttl, history=history, writer=self.name, readers=(), schema="")
        return await streams.ensure_kv(self.js, spec, description=description)

    @overload
    async def bind(self, spec: KvSpec) -> KeyValue: ...
    @overload
    async def bind(self, spec: ObjectStoreSpec) -> ObjectStore: ...
    @overload
    async def bind(self, spec: StreamSpec) -> None: ...

    async def bind(self, spec: KvSpec | ObjectStoreSpec | StreamSpec) -> KeyValue | ObjectStore | None:
        """Create the declared bucket, object store or stream, or check the existing one against ``spec``.

        Raises :class:`~baton_common.streams.StoreMismatch` (a ConfigError: the
        service does not start) naming the store and each setting that differs.
        """
        if isinstance(spec, KvSpec):
            return await streams.ensure_kv(self.js, spec)
        if isinstance(spec, ObjectStoreSpec):
            return await streams.ensure_object_store(self.js, spec)
        await streams.ensure_stream(self.js, spec)
        return None


async def bucket_keys(kv: KeyValue) -> list[str]:
    """The keys of a KV bucket, from the server's own count per subject.

    nats-py's ``KeyValue.keys()`` walks a watcher that ends on its first "nothing pending", and
    misses keys that are rewritten during the walk (heartbeats every 2 s): a service that is up
    could read as gone. The stream's per-subject state is one answer from the server, so every
    key that exists is listed; deleted keys are listed too (by their marker) and dropped on read.
    """
    info = await kv._js.stream_info(kv._stream, subjects_filter=f"{kv._pre}>")
    return [subject.removeprefix(kv._pre) for subject in (info.state.subjects or {})]


async def read_bucket(kv: KeyValue) -> dict[str, bytes]:
    """Every live key of a KV bucket with its value; keys deleted or expired meanwhile are left out."""
    keys = await bucket_keys(kv)
    out = {}
    for key in keys:
        try:
            entry = await kv.get(key)
        except nats.js.errors.NotFoundError:  # KeyNotFoundError, KeyDeletedError
            continue
        if entry.value:
            out[key] = entry.value
    return out


async def read_bucket_as(kv: KeyValue, type_: type[R]) -> list[R]:
    """Every value of a KV bucket decoded as ``type_``; values that do not decode are skipped.

    A value another version wrote in a newer, incompatible shape is not ours to judge.
    """
    out = []
    for value in (await read_bucket(kv)).values():
        try:
            out.append(decode(value, type_))
        except msgspec.ValidationError:
            continue
    return out


def _trace_headers() -> dict[str, str]:
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers

