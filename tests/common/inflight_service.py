"""A test service whose HTTP requests are slow and write over NATS: the in-flight work a shutdown must finish.

``POST /work/<key>`` on its own listener (opened with ``ctx.serve_http``)
writes ``<key>.nonces`` into a KV bucket, waits ``work_seconds``, writes
``<key>.credit``, and answers 200: it stands in for a payment that spends
its nonces, then records the credit. A subclass overrides :meth:`Inflight.work`
to do real work (the payment processor) in the same place.

Run it as a process with ``python -m tests.common.inflight_service``; it reads
``BATON_INFLIGHT_*`` (and the shared ``BATON_*``) like any service.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Litestar, post
from nats.js.kv import KeyValue

from baton_common.config import CommonSettings, setting
from baton_common.runtime import ServiceBase, ServiceContext, run_service

__all__ = ["Inflight", "InflightSettings"]


class InflightSettings(CommonSettings, frozen=True, kw_only=True):
    bucket: Annotated[str, setting("KV bucket the work writes into.")] = "inflight"
    listen_port: Annotated[int, setting("Port of the service's own listener (0: any free port).")] = 0
    work_seconds: Annotated[float, setting("How long one request takes between its two writes.")] = 1.0


class Inflight(ServiceBase[InflightSettings]):
    name = "inflight"

    def __init__(self, settings: InflightSettings) -> None:
        super().__init__(settings)
        self.kv: KeyValue | None = None

    async def work(self, key: str) -> bytes:
        """One request's work: two writes over NATS with a wait between (override for the real thing)."""
        assert self.kv is not None
        await self.kv.put(f"{key}.nonces", b"spent")
        await asyncio.sleep(self.settings.work_seconds)
        await self.kv.put(f"{key}.credit", b"credited")
        return b"done"

    def app(self) -> Litestar:
        @post("/work/{key:str}", status_code=200)
        async def handle(key: str) -> bytes:
            return await self.work(key)

        return Litestar(route_handlers=[handle], logging_config=None, openapi_config=None)

    async def start(self, ctx: ServiceContext) -> None:
        self.kv = await ctx.bus.kv(self.settings.bucket)
        ctx.serve_http(self.app(), f"127.0.0.1:{self.settings.listen_port}")


if __name__ == "__main__":
    run_service("inflight", InflightSettings, Inflight)
