"""The service runtime every Baton service runs on.

It serves ``/healthz``, ``/readyz`` and ``/metrics``; connects to NATS
(retrying forever); writes a heartbeat into the ``baton-heartbeats`` KV bucket
every 2 s (10 s TTL); runs the service's probes; owns the HTTP listeners the
service opens (:meth:`ServiceContext.serve_http`); and on SIGTERM or SIGINT
stops in this order, within :data:`~.budget.SHUTDOWN_BUDGET` (20 s), each
phase bounded by its share (:class:`~.budget.ShutdownPhases`):

1. heartbeat ``stopping``, ``/readyz`` 503 (``baton status`` and the monitor
   stop counting it) (1 s);
2. every HTTP listener, the health server and the service's own, stops
   accepting: new connections are refused, idle keep-alive connections closed;
3. the HTTP requests in flight finish, NATS still up, so a payment that
   spent its nonces also records its credit (2 and 3: 8 s);
4. subscriptions drained and the bus handlers in flight finished (4 s);
5. the service's own ``stop()`` (4 s);
6. heartbeat removed (1 s), NATS drained and closed (2 s).

``baton up`` sends SIGKILL only after the budget and a margin. ``/healthz``
answers until step 2 closes the health server.

If NATS closes under it, start-up fails, or an HTTP port cannot be bound,
the process exits 1 so its supervisor restarts it; a configuration error
exits 2 before anything starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, NoReturn, TypeVar

import nats.errors
import nats.js.errors
import uvloop
from nats.js.kv import KeyValue

from .. import __version__
from ..bus import Bus
from ..config import CommonSettings, ConfigError, load_settings, redacted
from ..schemas import HEARTBEAT_BUCKET, HEARTBEAT_INTERVAL, HEARTBEAT_TTL, Check, Heartbeat, encode, heartbeat_key
from ..telemetry import (
    HEARTBEAT_ERRORS,
    NATS_CONNECTED,
    NATS_RECONNECTS,
    RUNTIME_INFO,
    RUNTIME_READY,
    setup_logging,
    setup_tracing,
)
from .budget import SHUTDOWN_BUDGET, ShutdownPhases
from .http import Readiness, build_app
from .listener import Listener, hypercorn_config
from .service import ServiceBase, ServiceContext

__all__ = ["Runtime", "run_loop", "run_service"]

S = TypeVar("S", bound=CommonSettings)
T = TypeVar("T")


class _Stopped(Exception):
    """A stop signal (or a fatal error) came before the awaited step finished."""


class Runtime(Generic[S]):
    """Runs one service instance until SIGTERM/SIGINT or a fatal error; :meth:`run` returns the exit code."""

    def __init__(self, service: ServiceBase[S], settings: S, *, version: str = __version__,
                 shutdown_budget: float = SHUTDOWN_BUDGET) -> None:
        self.service = service
        self.settings = settings
        self.name = service.name
        self.version = version
        self.instance = settings.instance_id or socket.gethostname()
        self.log = logging.getLogger(f"baton.{self.name}")
        self.started_at = time.time()
        self.state = "starting"
        self.bus: Bus | None = None
        self.ctx: ServiceContext | None = None
        self._started = False
        self._stop = asyncio.Event()
        self._fatal: str | None = None
        self._seen_connect = False
        self._beat_now = asyncio.Event()
        self._kv: KeyValue | None = None
        self.phases = ShutdownPhases.of(shutdown_budget)
        self.listeners: list[Listener] = []
        """Every HTTP listener: the health server first, then those the service opened."""

    # -- readiness ---------------------------------------------------------

    def checks(self) -> dict[str, Check]:
        nats_ok = self.bus is not None and self.bus.connected
        out = {"nats": Check(ok=nats_ok, detail="connected" if nats_ok else "not connected", required=True)}
        for probe in self.ctx.probes if self.ctx else ():
            out[probe.name] = probe.result
        out.update(self.service.checks())
        return out

    def readiness(self) -> Readiness:
        checks = self.checks()
        ready = self._started and self.state != "stopping" and all(c.ok for c in checks.values() if c.required)
        if self.state != "stopping" and self._started:
            self.state = "ready" if ready else "not_ready"
        RUNTIME_READY.labels(self.name).set(1 if ready else 0)
        return Readiness(service=self.name, instance=self.instance, state=self.state, ready=ready, checks=checks)

    @property
    def http_port(self) -> int:
        """The health server's port: the one bound, where the setting says 0."""
        return self.listeners[0].port if self.listeners else self.settings.http_port

    def heartbeat(self) -> Heartbeat:
        r = self.readiness()
        return Heartbeat(
            service=self.name,
            instance=self.instance,
            version=self.version,
            state=r.state,  # type: ignore[arg-type]
            started_at=self.started_at,
            at=time.time(),
            pid=os.getpid(),
            http=f"http://{_host_for_url(self.settings.http_host)}:{self.http_port}",
            checks=r.checks,
        )

    # -- lifecycle ---------------------------------------------------------

    def fatal(self, reason: str) -> None:
        if self._fatal is None:
            self._fatal = reason
        self._stop.set()

    def request_stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self._stop.set()

    def _on_nats_state(self, connected: bool) -> None:
        NATS_CONNECTED.labels(self.name).set(1 if connected else 0)
        if connected:
            if self._seen_connect:
                NATS_RECONNECTS.labels(self.name).inc()
            self._seen_connect = True

    async def run(self, *, handle_signals: bool = True) -> int:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        RUNTIME_INFO.labels(self.name, self.version, self.instance).set(1)
        NATS_CONNECTED.labels(self.name).set(0)
        RUNTIME_READY.labels(self.name).set(0)
        self.log.info("starting", extra={"version": self.version, "settings": redacted(self.settings)})

        tasks: list[asyncio.Task[None]] = []
        started_service = False
        try:
            self._open_health_server()
            self.bus = await self._step(
                Bus.connect(self.settings.nats_servers, name=f"baton-{self.name}-{self.instance}",
                            on_fatal=self.fatal, on_state=self._on_nats_state, drain_timeout=self.phases.nats / 2)
            )
            self.ctx = ServiceContext(self.bus, self.instance, self.log, on_listener_exit=self.fatal,
                                      http_drain=self.phases.http)
            self._kv = await self._step(self._heartbeat_bucket())
            key = heartbeat_key(self.name, self.instance)
            tasks.append(asyncio.create_task(self._heartbeats(self._kv, key), name="heartbeat"))
            started_service = True
            await self._step(self.service.start(self.ctx))
            await self._step(_quietly(self.bus.nc.flush(), 2.0))  # ready: the server has start()'s subscriptions
            tasks += [asyncio.create_task(p.run(), name=f"probe-{p.name}") for p in self.ctx.probes]
            self._started = True
            self._beat_now.set()  # tell the bucket at once, not at the next interval
            self.log.info("started", extra={"ready": self.readiness().ready})
            await self._stop.wait()
        except _Stopped:
            pass
        except Exception as exc:
            self.log.exception("start-up failed")
            self.fatal(f"start-up failed: {exc!r}")
        finally:
            await self._shutdown(tasks, started_service)
            if handle_signals:  # uvloop's close does not give the signals back: a hang on exit stays killable
                for sig in (signal.SIGTERM, signal.SIGINT):
                    asyncio.get_running_loop().remove_signal_handler(sig)
        code = 1 if self._fatal else 0
        if self._fatal:
            self.log.error("exiting on a fatal error", extra={"reason": self._fatal})
        self.log.info("stopped", extra={"exit_code": code})
        return code

    async def _step(self, aw: Awaitable[T]) -> T:
        """Await one start-up step unless a stop signal (or a fatal error, such as a listener dying) comes first."""
        work = asyncio.ensure_future(aw)
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        raise _Stopped

    def _open_health_server(self) -> None:
        config = hypercorn_config(f"{self.settings.http_host}:{self.settings.http_port}")
        app = build_app(self.name, self.readiness, self.service.routes())
        health = Listener("health", app, config, on_exit=self.fatal, drain_timeout=self.phases.http)
        try:
            health.open()
        except OSError as exc:
            self.fatal(f"HTTP server stopped: cannot listen on {config.bind[0]}: {exc}")
            raise _Stopped from None
        self.listeners.append(health)

    async def _heartbeat_bucket(self) -> KeyValue:
        assert self.bus is not None
        try:
            return await self.bus.kv(HEARTBEAT_BUCKET, ttl=HEARTBEAT_TTL, description="Baton service heartbeats")
        except nats.js.errors.Error as exc:
            raise RuntimeError(f"NATS cannot hold the heartbeat bucket (is JetStream enabled?): {exc!r}") from None

    async def _heartbeats(self, kv: KeyValue, key: str) -> None:
        failing = False
        while True:
            try:
                await kv.put(key, encode(self.heartbeat()))
                if failing:
                    self.log.info("heartbeats are written again")
                failing = False
            except Exception as exc:
                HEARTBEAT_ERRORS.labels(self.name).inc()
                if not failing:
                    self.log.warning("cannot write heartbeat", extra={"error": repr(exc)})
                failing = True
            try:
                await asyncio.wait_for(self._beat_now.wait(), timeout=HEARTBEAT_INTERVAL)
            except TimeoutError:
                pass
            self._beat_now.clear()

    async def _shutdown(self, tasks: Sequence[asyncio.Task[None]], started_service: bool) -> None:
        """The order of the module docstring; every step bounded, so it ends within the budget."""
        p = self.phases
        self.log.info("stopping", extra={"reason": self._fatal or "signal"})
        self.state = "stopping"
        RUNTIME_READY.labels(self.name).set(0)
        for task in tasks:
            task.cancel()
        key = heartbeat_key(self.name, self.instance)
        bus, kv = self.bus, self._kv
        if bus is not None and kv is not None and bus.connected:
            await _quietly(kv.put(key, encode(self.heartbeat())), p.heartbeat)
        listeners = [*self.listeners, *(self.ctx.listeners if self.ctx else ())]
        for listener in listeners:
            listener.stop_accepting()
        await asyncio.gather(*(listener.wait_closed(p.http) for listener in listeners))
        if bus is not None:
            await self._bounded("drain subscriptions", bus.drain_subscriptions(p.handlers), p.handlers)
        if started_service:
            try:
                await asyncio.wait_for(self.service.stop(), timeout=p.service)
            except Exception:
                self.log.exception("service stop failed")
        if bus is not None:
            if kv is not None and bus.connected:
                await _quietly(kv.delete(key), p.heartbeat)
            if not await self._bounded("drain NATS", bus.drain(), 0.75 * p.nats):
                await _quietly(bus.nc.close(), 0.25 * p.nats)

    async def _bounded(self, what: str, aw: Awaitable[None], timeout: float) -> bool:
        """Await one shutdown step for at most ``timeout`` s; whether it finished."""
        try:
            await asyncio.wait_for(aw, timeout=timeout)
            return True
        except TimeoutError:
            self.log.warning("shutdown step ran out of time", extra={"step": what, "timeout": timeout})
            return False


async def _quietly(aw: Awaitable[object], timeout: float) -> None:
    """A best-effort write during shutdown: NATS may be gone; the TTL cleans up after us."""
    try:
        await asyncio.wait_for(aw, timeout=timeout)
    except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
        pass


def _host_for_url(host: str) -> str:
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def run_service(name: str, settings_cls: type[S], factory: Callable[[S], ServiceBase[S]],
                argv: Sequence[str] | None = None) -> NoReturn:
    """The body of every service's ``main()``: load settings, set up telemetry, run, exit."""
    try:
        settings = load_settings(settings_cls, name, argv=sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"baton-{name}: configuration error: {exc.message}", file=sys.stderr)
        sys.exit(2)
    instance = settings.instance_id or socket.gethostname()
    setup_logging(name, instance, settings.log_level, settings.log_format)
    setup_tracing(name, instance, __version__, settings.otlp_endpoint)
    try:
        service = factory(settings)  # may check files the settings name (secrets, model lists)
    except ConfigError as exc:
        print(f"baton-{name}: configuration error: {exc.message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_loop(Runtime(service, settings).run()))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on uvloop, the event loop every service runs on.

    libuv's loop spends less CPU per socket event and TLS record than asyncio's
    own: about a quarter less of the negotiator's CPU per AI job
    (bench/inference_bench.py), CPU a GPU host's Python processes and a CPU
    host's Triton share."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
