"""The service runtime every Baton service runs on.

It serves ``/healthz``, ``/readyz`` and ``/metrics``; connects to NATS
(retrying forever); writes a heartbeat into the ``baton-heartbeats`` KV bucket
every 2 s (10 s TTL); runs the service's probes; and shuts down gracefully on
SIGTERM or SIGINT: heartbeat ``stopping``, the service's own stop, heartbeat
removed, NATS drained, HTTP closed. If NATS closes under it, or the HTTP port
cannot be bound, the process exits non-zero so its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

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
from .http import Readiness, build_app
from .service import Probe, ServiceBase, ServiceContext

__all__ = ["Probe", "Runtime", "ServiceBase", "ServiceContext", "run_service"]

S = TypeVar("S", bound=CommonSettings)


class Runtime:
    """Runs one service instance until SIGTERM/SIGINT or a fatal error; :meth:`run` returns the exit code."""

    def __init__(self, service: ServiceBase[S], settings: S, *, version: str = __version__) -> None:
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
            http=f"http://{_host_for_url(self.settings.http_host)}:{self.settings.http_port}",
            checks=r.checks,
        )

    # -- lifecycle ---------------------------------------------------------

    def fatal(self, reason: str) -> None:
        if self._fatal is None:
            self._fatal = reason
        self._stop.set()

    def _on_nats_state(self, connected: bool) -> None:
        NATS_CONNECTED.labels(self.name).set(1 if connected else 0)
        if connected:
            if self._seen_connect:
                NATS_RECONNECTS.labels(self.name).inc()
            self._seen_connect = True

    def request_stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> int:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        RUNTIME_INFO.labels(self.name, self.version, self.instance).set(1)
        NATS_CONNECTED.labels(self.name).set(0)
        RUNTIME_READY.labels(self.name).set(0)
        self.log.info("starting", extra={"version": self.version, "settings": redacted(self.settings)})

        http_stop = asyncio.Event()
        http = asyncio.create_task(self._serve_http(http_stop), name="http")
        tasks: list[asyncio.Task[None]] = []
        try:
            connected = await self._until_stopped(
                Bus.connect(self.settings.nats_servers, name=f"baton-{self.name}-{self.instance}",
                            on_fatal=self.fatal, on_state=self._on_nats_state),
                http,
            )
            if connected is None:
                return self._exit_code()
            self.bus = connected
            self.ctx = ServiceContext(self.bus, self.instance, self.log)
            kv = await self.bus.kv(HEARTBEAT_BUCKET, ttl=HEARTBEAT_TTL, description="Baton service heartbeats")
            key = heartbeat_key(self.name, self.instance)
            tasks.append(asyncio.create_task(self._heartbeats(kv, key), name="heartbeat"))
            try:
                done = await self._until_stopped(self.service.start(self.ctx), http)
            except Exception:
                self.log.exception("start-up failed")
                self._fatal = self._fatal or "start-up failed"
                return self._exit_code()
            tasks += [asyncio.create_task(p.run(), name=f"probe-{p.name}") for p in self.ctx.probes]
            if done is not None or not self._stop.is_set():
                self._started = True
                self._beat_now.set()  # tell the bucket at once, not at the next interval
                self.log.info("started", extra={"ready": self.readiness().ready})
            await self._until_stopped(self._stop.wait(), http)
            await self._shutdown(kv, key, tasks)
            return self._exit_code()
        finally:
            for task in tasks:
                task.cancel()
            http_stop.set()
            try:
                await asyncio.wait_for(http, timeout=5)
            except (Exception, asyncio.CancelledError):  # already reported through fatal()
                pass
            if self.bus is not None and not self.bus.nc.is_closed:
                await self.bus.drain()
            self.log.info("stopped", extra={"exit_code": self._exit_code()})

    def _exit_code(self) -> int:
        if self._fatal:
            self.log.error("exiting on a fatal error", extra={"reason": self._fatal})
            return 1
        return 0

    async def _until_stopped(self, aw, http: asyncio.Task[None]):  # type: ignore[no-untyped-def]
        """Await ``aw`` unless a stop signal comes first or the HTTP server dies; None if it did not finish."""
        work = asyncio.ensure_future(aw)
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({work, stop, http}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if http.done() and not work.done():
            exc = http.exception() if not http.cancelled() else None
            self.fatal(f"HTTP server stopped: {exc}")
        if work.done():
            return work.result()
        work.cancel()
        return None

    async def _serve_http(self, stop: asyncio.Event) -> None:
        config = HypercornConfig()
        config.bind = [f"{self.settings.http_host}:{self.settings.http_port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 3
        app = build_app(self.name, self.readiness, self.service.routes())
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    async def _heartbeats(self, kv, key: str) -> None:  # type: ignore[no-untyped-def]
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

    async def _shutdown(self, kv, key: str, tasks: Sequence[asyncio.Task[None]]) -> None:  # type: ignore[no-untyped-def]
        self.log.info("stopping", extra={"reason": self._fatal or "signal"})
        self.state = "stopping"
        RUNTIME_READY.labels(self.name).set(0)
        for task in tasks:
            task.cancel()
        if self.bus is not None and self.bus.connected:
            try:
                await kv.put(key, encode(self.heartbeat()))
            except Exception:
                pass
        try:
            await asyncio.wait_for(self.service.stop(), timeout=20)
        except Exception:
            self.log.exception("service stop failed")
        if self.bus is not None and self.bus.connected:
            try:
                await kv.delete(key)
            except Exception:
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
    sys.exit(asyncio.run(Runtime(service, settings).run()))
