"""What a service plugs into the runtime: start-up, shutdown, checks and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from ..bus import Bus
from ..config import CommonSettings
from ..schemas import Check

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
    """What the runtime hands a service at start: the bus, the instance name and probes."""

    def __init__(self, bus: Bus, instance: str, log: logging.Logger) -> None:
        self.bus = bus
        self.instance = instance
        self.log = log
        self.probes: list[Probe] = []

    def probe(
        self, name: str, check: Callable[[], Awaitable[str]], *, interval: float = 5.0, required: bool = False
    ) -> Probe:
        """Register a backend check; the runtime runs it and reports it in heartbeats and /readyz."""
        p = Probe(name, check, interval=interval, required=required)
        self.probes.append(p)
        return p


class ServiceBase(Generic[S]):
    """Base of the six services. Override what the service needs; the defaults do nothing."""

    name: ClassVar[str]
    """The service's name: heartbeat key, metric label, env prefix."""

    def __init__(self, settings: S) -> None:
        self.settings = settings

    def routes(self) -> Sequence[Any]:
        """Extra litestar route handlers served beside /healthz, /readyz and /metrics."""
        return []

    async def start(self, ctx: ServiceContext) -> None:
        """Start-up work; the instance is ready once this returns (and required checks pass)."""

    async def stop(self) -> None:
        """Stop taking work and finish what is in flight; NATS is drained afterwards."""

    def checks(self) -> dict[str, Check]:
        """The service's own view of its dependencies, beside its probes."""
        return {}
