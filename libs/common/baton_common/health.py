"""Reading heartbeats: which services are up, as `baton status` and the monitor see them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from .schemas import HEARTBEAT_INTERVAL, Heartbeat

__all__ = ["STALE_AFTER", "ServiceStatus", "is_fresh", "summarize"]

STALE_AFTER = 3 * HEARTBEAT_INTERVAL
"""A heartbeat older than three intervals means its instance is gone."""


class ServiceStatus(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    up: bool
    """Some instance heartbeated within STALE_AFTER seconds."""
    ready: int
    """Instances that are fresh and ready."""
    instances: list[Heartbeat]


def is_fresh(hb: Heartbeat, now: float) -> bool:
    return now - hb.at <= STALE_AFTER and hb.state != "stopping"


def summarize(heartbeats: Iterable[Heartbeat], expected: Sequence[str], now: float) -> dict[str, ServiceStatus]:
    """Group heartbeats by service; every expected service appears, down if it has no fresh instance."""
    by_service: dict[str, list[Heartbeat]] = {name: [] for name in expected}
    for hb in heartbeats:
        by_service.setdefault(hb.service, []).append(hb)
    out = {}
    for name, hbs in by_service.items():
        hbs.sort(key=lambda h: h.instance)
        fresh = [h for h in hbs if is_fresh(h, now)]
        out[name] = ServiceStatus(
            service=name, up=bool(fresh), ready=sum(h.state == "ready" for h in fresh), instances=hbs
        )
    return out
