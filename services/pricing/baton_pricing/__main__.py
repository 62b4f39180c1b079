"""Composition root of the pricing service: the price table per gateway and capability, its admin API."""

from __future__ import annotations

import asyncio
import contextlib

from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import Check

from .book import PriceBook
from .bus import ChainRate, FixedRate, PriceStore
from .config import PricingSettings, fixed_rate, load_rules
from .domain import Pricer
from .http import build_admin_app
from .ports import RateSource
from .tokens import Tokens

__all__ = ["Pricing", "main"]


class Pricing(ServiceBase[PricingSettings]):
    name = "pricing"

    def __init__(self, settings: PricingSettings) -> None:
        super().__init__(settings)
        # Everything the settings name is checked here, before anything starts (a bad value exits 2).
        self.pricer = Pricer(load_rules(settings), max_rate_age=settings.eth_usd_max_age)
        self.rate = fixed_rate(settings)
        self.tokens = Tokens.load(settings.admin_tokens_file)
        if self.pricer.needs_rate() and self.rate is None and settings.network == "offchain":
            from baton_common.config import ConfigError

            raise ConfigError("pricing: USD prices offchain need BATON_PRICING_ETH_USD_RATE (there is no price feed)")
        self.book: PriceBook | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, ctx: ServiceContext) -> None:
        store = await PriceStore.bind(ctx.bus)
        self.book = book = PriceBook(self.pricer, store)
        source: RateSource = FixedRate(self.rate) if self.rate else ChainRate(ctx.bus)
        await book.start()
        self._tasks = [asyncio.create_task(source.run(book.on_rate), name="eth-usd"),
                       asyncio.create_task(book.run_refresh(), name="refresh")]
        if self.settings.admin_addr:
            ctx.serve_http(build_admin_app(book, self.tokens), self.settings.admin_addr, name="admin")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def checks(self) -> dict[str, Check]:
        table = self.book.table if self.book else None
        if table is None:
            return {"price_table": Check(ok=False, detail="no table published yet (waiting for the ETH/USD rate?)",
                                         required=True)}
        stale = " (ETH/USD stale: last good rate)" if table.eth_usd_stale else ""
        return {"price_table": Check(ok=True, detail=f"version {table.version}{stale}", required=True)}


def main() -> None:
    run_service("pricing", PricingSettings, Pricing)


if __name__ == "__main__":
    main()
