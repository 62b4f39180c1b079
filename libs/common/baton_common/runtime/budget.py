"""How long a service may take to stop: one budget, shared out among the shutdown phases.

The runtime bounds each phase by its share, so a SIGTERM ends in an exit
within :data:`SHUTDOWN_BUDGET` seconds whatever hangs; a supervisor (``baton
up``, compose's ``stop_grace_period``) waits that long plus a margin before
it sends SIGKILL.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SHUTDOWN_BUDGET", "ShutdownPhases"]

SHUTDOWN_BUDGET = 20.0
"""Seconds from SIGTERM to the end of the runtime's shutdown, at most."""


@dataclass(frozen=True)
class ShutdownPhases:
    """The time each shutdown phase may take, in seconds (see :mod:`.runtime` for the order)."""

    heartbeat: float
    """Each of the two heartbeat writes: ``stopping``, then the removal."""
    http: float
    """HTTP listeners: stop accepting, then finish the requests in flight."""
    handlers: float
    """NATS subscriptions drained and the bus handlers in flight finished."""
    service: float
    """The service's own ``stop()``."""
    nats: float
    """NATS drained (the replies and publishes still buffered sent) and closed."""

    @classmethod
    def of(cls, budget: float = SHUTDOWN_BUDGET) -> ShutdownPhases:
        """Share ``budget`` out: most of it to the HTTP requests in flight, which may carry payments."""
        return cls(heartbeat=0.05 * budget, http=0.4 * budget, handlers=0.2 * budget, service=0.2 * budget,
                   nats=0.1 * budget)

    @property
    def total(self) -> float:
        """The worst case: every phase runs out its time."""
        return 2 * self.heartbeat + self.http + self.handlers + self.service + self.nats
