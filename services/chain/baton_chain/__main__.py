"""Composition root of the chain service: rounds, rewards and ticket redemption.

Offchain (the default) it needs no Ethereum node. With an -ethUrl it reports
the node's chain id and head block as a detail of its heartbeat.
"""

from __future__ import annotations

import httpx

from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import Check

from .chain import EthHealth
from .config import ChainSettings

__all__ = ["Chain", "main"]


class Chain(ServiceBase[ChainSettings]):
    name = "chain"

    async def start(self, ctx: ServiceContext) -> None:
        self.http = httpx.AsyncClient(timeout=3.0)
        if self.settings.eth_url:
            ctx.probe("eth", EthHealth(self.settings.eth_url, self.http).check, interval=10.0)

    async def stop(self) -> None:
        await self.http.aclose()

    def checks(self) -> dict[str, Check]:
        return {"network": Check(ok=True, detail=self.settings.network)}


def main() -> None:
    run_service("chain", ChainSettings, Chain)


if __name__ == "__main__":
    main()
