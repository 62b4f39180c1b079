"""What the pricing domain needs from outside: the ETH/USD rate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from .domain import Rate

__all__ = ["RateSource"]


class RateSource(Protocol):
    """Delivers each reading of the ETH/USD price feed to ``on_rate``, until cancelled."""

    async def run(self, on_rate: Callable[[Rate], Awaitable[None]]) -> None: ...
