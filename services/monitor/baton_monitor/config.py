"""Settings of the monitor service (environment `BATON_MONITOR_<NAME>`)."""

from __future__ import annotations

from typing import Annotated

from baton_common.config import SERVICES, CommonSettings, setting

__all__ = ["MonitorSettings"]


class MonitorSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7940
    expected_services: Annotated[
        tuple[str, ...], setting("Services that must have a live instance (comma-separated).")
    ] = SERVICES
    poll_interval: Annotated[float, setting("Seconds between two reads of the heartbeat bucket.", gt=0)] = 2.0
