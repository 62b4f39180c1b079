"""The health and metrics endpoints every service serves, over litestar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ..schemas import Check

__all__ = ["Readiness", "build_app"]


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    instance: str
    state: str
    ready: bool
    checks: dict[str, Check]


def build_app(service: str, readiness: Callable[[], Readiness], extra: Sequence[Any] = ()) -> Litestar:
    @get("/healthz", media_type=MediaType.JSON, sync_to_thread=False)
    def healthz() -> dict[str, str]:
        """Alive: the process runs its event loop."""
        return {"status": "alive", "service": service}

    @get("/readyz", media_type=MediaType.JSON, sync_to_thread=False)
    def readyz() -> Response[bytes]:
        """Ready to serve: NATS connected, start-up done, required checks passing."""
        r = readiness()
        return Response(msgspec.json.encode(r), status_code=200 if r.ready else 503, media_type=MediaType.JSON)

    @get("/metrics", sync_to_thread=False)
    def metrics() -> Response[bytes]:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Litestar(route_handlers=[healthz, readyz, metrics, *extra], logging_config=None, openapi_config=None)
