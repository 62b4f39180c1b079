"""Pure logic of the monitor: what changed between two looks at the heartbeats."""

from __future__ import annotations

from collections.abc import Mapping

from baton_common.health import ServiceStatus

__all__ = ["transitions"]


def transitions(before: Mapping[str, bool], now: Mapping[str, ServiceStatus]) -> list[tuple[str, bool]]:
    """Services whose up/down state differs from ``before`` (a new service counts as a change)."""
    return [(name, st.up) for name, st in sorted(now.items()) if before.get(name) != st.up]
