"""What a service plugs into the runtime: start-up, shutdown, checks and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from hypercorn.config import Config as HypercornConfig

from ..bus import Bus
from ..config import CommonSettings
from ..schemas import Check
from .budget import ShutdownPhases
from .listener import Listener, hypercorn_config

__all__ = ["Probe", "ServiceBase", "ServiceContext"]

S = TypeVar("S", bound=CommonSettings)


class Probe:
    """Checks one backend every ``interval`` seconds; its latest result is a :class:`Check`.

    ``check`` returns a short detail on success and raises on failure.
    """

    def __init__(
        self, name: str, check: Callable[[], Awaitable[str]], *, interval: float = 5.0, required: bool = False
    ) -> None:
        self.name = name
        self._check = check
        self.interval = interval
        self.required = required
        self.result = Check(ok=False, detail="not checked yet", required=required)

    async def run_once(self) -> Check:
        try:
            detail = await asyncio.wait_for(self._check(), timeout=max(1.0, self.interval))
            self.result = Check(ok=True, detail=detail, required=self.required)
        except Exception as exc:  # any failure of the backend is a failed check
            self.result = Check(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300], required=self.required)
        return self.result

    async def run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)


class ServiceContext:
    """What the runtime hands a service at start: the bus, the instance name, probes and HTTP listeners."""

    def __init__(self, bus: Bus, instance: str, log: logging.Logger, *,
                 on_listener_exit: Callable[[str], None] = lambda reason: None,
                 http_drain: float = ShutdownPhases.of().http) -> None:
        self.bus = bus
        self.instance = instance
        self.log = log
        self.probes: list[Probe] = []
        self.listeners: list[Listener] = []
        """The listeners opened through :meth:`serve_http`; the runtime stops them before NATS drains."""
        self._on_listener_exit = on_listener_exit
        self._http_drain = http_drain

    def fatal(self, reason: str) -> None:
        """Stop the process with exit code 1 (its supervisor restarts it): a background task of the service died."""
        self._on_listener_exit(reason)

    def probe(
        self, name: str, check: Callable[[], Awaitable[str]], *, interval: float = 5.0, required: bool = False
    ) -> Probe:
        """Register a backend check; the runtime runs it and reports it in heartbeats and /readyz."""
        p = Probe(name, check, interval=interval, required=required)
        self.probes.append(p)
        return p

    def serve_http(
        self,
        app: Any,
        bind: str | Sequence[str] = (),
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        config: HypercornConfig | None = None,
        name: str = "public",
    ) -> Listener:
        """Serve the ASGI ``app`` on ``bind`` ("host:port", or several) until the runtime stops.

        With ``certfile`` and ``keyfile`` it is TLS, HTTP/2 or HTTP/1.1 by ALPN; without, HTTP/1.1 and h2c.
        A full Hypercorn ``config`` may be given instead of ``bind`` and the files; its ``graceful_timeout``
        is replaced by the runtime's. The socket listens when this returns (OSError for a port in use);
        at shutdown the runtime stops accepting, then waits for the requests in flight, before NATS drains.
        """
        if config is None:
            if not bind:
                raise ValueError(f"listener {name}: give a bind address or a Hypercorn config")
            config = hypercorn_config(bind if isinstance(bind, str) else list(bind), certfile=certfile, keyfile=keyfile)
        elif bind or certfile or keyfile:
            raise ValueError(f"listener {name}: give either a Hypercorn config or bind and TLS files, not both")
        listener = Listener(name, app, config, on_exit=self._on_listener_exit, drain_timeout=self._http_drain)
        listener.open()
        self.listeners.append(listener)
        self.log.info("listening", extra={"listener": name, "addresses": [f"{h}:{p}" for h, p in listener.addresses]})
        return listener


class ServiceBase(Generic[S]):
    """Base of the six services. Override what the service needs; the defaults do nothing."""

    name: ClassVar[str]
    """The service's name: heartbeat key, metric label, env prefix."""

    def __init__(self, settings: S) -> None:
        self.settings = settings

    def routes(self) -> Sequence[Any]:
        """Extra litestar route handlers served beside /healthz, /readyz and /metrics.

        A public or TLS port is a listener of its own: open it with :meth:`ServiceContext.serve_http`.
        """
        return []

    async def start(self, ctx: ServiceContext) -> None:
        """Start-up work; the instance is ready once this returns (and required checks pass)."""

    async def stop(self) -> None:
        """Close what :meth:`start` opened; HTTP and bus requests in flight are finished by then, NATS is still up."""

    def checks(self) -> dict[str, Check]:
        """The service's own view of its dependencies, beside its probes."""
        return {}
