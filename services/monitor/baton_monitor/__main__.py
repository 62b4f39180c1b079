"""Composition root of the monitor service: health of the whole stack.

It reads every heartbeat every 2 s, exports which services are up as
Prometheus metrics, logs each service that goes down or comes back, and
serves the summary at ``GET /status``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from litestar import get
from nats.js.kv import KeyValue

from baton_common.bus import read_bucket_as
from baton_common.config import SERVICES
from baton_common.health import ServiceStatus, is_fresh, summarize
from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import HEARTBEAT_BUCKET, HEARTBEAT_TTL, Heartbeat

from .config import MonitorSettings
from .domain import transitions
from .metrics import SERVICE_INSTANCES, SERVICE_UP

__all__ = ["Monitor", "main"]

log = logging.getLogger("baton.monitor")


class Monitor(ServiceBase[MonitorSettings]):
    name = "monitor"

    def __init__(self, settings: MonitorSettings) -> None:
        super().__init__(settings)
        self.status: dict[str, ServiceStatus] = {}
        self._up: dict[str, bool] = {}
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list:
        @get("/status", sync_to_thread=False)
        def status() -> dict[str, ServiceStatus]:
            """Every expected service, up or down, with its instances' last heartbeats."""
            return self.status

        return [status]

    async def start(self, ctx: ServiceContext) -> None:
        unknown = set(self.settings.expected_services) - set(SERVICES)
        if unknown:
            log.warning("expecting services Baton does not have", extra={"services": sorted(unknown)})
        kv = await ctx.bus.kv(HEARTBEAT_BUCKET, ttl=HEARTBEAT_TTL)
        await self.poll(kv)
        self._task = asyncio.create_task(self._loop(kv))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _loop(self, kv: KeyValue) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            try:
                await self.poll(kv)
            except Exception as exc:
                log.warning("cannot read heartbeats", extra={"error": repr(exc)})

    async def poll(self, kv: KeyValue) -> None:
        now = time.time()
        self.status = summarize(await read_bucket_as(kv, Heartbeat), self.settings.expected_services, now)
        for name, up in transitions(self._up, self.status):
            if up:
                log.info("service up", extra={"svc": name})
            else:
                log.error("service down", extra={"svc": name})
            self._up[name] = up
        SERVICE_INSTANCES.clear()
        for name, st in self.status.items():
            SERVICE_UP.labels(name).set(1 if st.up else 0)
            for hb in (h for h in st.instances if is_fresh(h, now)):
                SERVICE_INSTANCES.labels(name, hb.state).inc()


def main() -> None:
    run_service("monitor", MonitorSettings, Monitor)


if __name__ == "__main__":
    main()
