"""Pricing on NATS: the table and settings in ``baton-pricing``, the rate from ``baton-chain``, the audit stream."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from baton_common.bus import Bus
from baton_common.schemas import decode, encode
from baton_common.schemas.audit import AUDIT, AUDIT_STREAM, AuditEvent, audit_subject
from baton_common.schemas.chain import CHAIN, EthUsdRate
from baton_common.schemas.pricing import PRICES, SETTINGS_KEY, TABLE_KEY, PriceSettings, PriceTable

from .domain import Rate
from .errors import PricingError

__all__ = ["ChainRate", "FixedRate", "PriceStore"]

log = logging.getLogger("baton.pricing")
ETH_USD_KEY = "eth-usd"
AUDIT_PRICES = audit_subject("prices")


class AuditUnavailable(PricingError):
    code = "unavailable"
    status_code = 503


class FixedRate:
    """The configured rate (offchain, or an operator's override): one reading, never stale."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate

    async def run(self, on_rate: Callable[[Rate], Awaitable[None]]) -> None:
        await on_rate(self.rate)
        await asyncio.Event().wait()


class ChainRate:
    """The chain service's ``eth-usd`` in ``baton-chain``, watched: each put arrives within milliseconds."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def run(self, on_rate: Callable[[Rate], Awaitable[None]]) -> None:
        kv = await self.bus.bind(CHAIN)
        while True:
            try:
                watcher = await kv.watch(ETH_USD_KEY)
                async for entry in watcher:
                    if entry is None or not entry.value:
                        continue
                    try:
                        await on_rate(Rate.from_chain(decode(entry.value, EthUsdRate)))
                    except msgspec.ValidationError as exc:
                        log.warning("eth-usd in baton-chain does not decode; ignored", extra={"error": str(exc)})
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning("watching eth-usd failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)


class PriceStore:
    """``baton-pricing`` (table, settings) and the prices' audit events."""

    def __init__(self, bus: Bus, kv: KeyValue) -> None:
        self.bus = bus
        self.kv = kv

    @classmethod
    async def bind(cls, bus: Bus) -> PriceStore:
        kv = await bus.bind(PRICES)
        await bus.bind(AUDIT)
        return cls(bus, kv)

    async def put_table(self, table: PriceTable) -> None:
        await self.kv.put(TABLE_KEY, encode(table))

    async def settings(self) -> PriceSettings | None:
        try:
            entry = await self.kv.get(SETTINGS_KEY)
        except nats.js.errors.KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return decode(entry.value, PriceSettings)

    async def put_settings(self, settings: PriceSettings) -> None:
        await self.kv.put(SETTINGS_KEY, encode(settings))

    async def audit(self, event: AuditEvent) -> None:
        """Append the event; retried with the same Nats-Msg-Id, so it is stored once."""
        for attempt in range(3):
            try:
                await self.bus.publish_durable(AUDIT_PRICES, event, msg_id=event.event_id)
                return
            except (nats.errors.Error, nats.js.errors.Error):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def history(self, *, limit: int, since: float) -> list[AuditEvent]:
        """The last ``limit`` price events since ``since`` (Unix), oldest first."""
        try:
            return await self._history(limit=limit, since=since)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise AuditUnavailable(f"the audit log cannot be read now ({type(exc).__name__}); try again") from None

    async def _history(self, *, limit: int, since: float) -> list[AuditEvent]:
        js = self.bus.js
        info = await js.stream_info(AUDIT_STREAM, subjects_filter=AUDIT_PRICES)
        if not (info.state.subjects or {}).get(AUDIT_PRICES):
            return []
        start = datetime.fromtimestamp(max(since, 0.0), UTC).isoformat().replace("+00:00", "Z")
        sub = await js.subscribe(AUDIT_PRICES, ordered_consumer=True, deliver_policy=DeliverPolicy.BY_START_TIME,
                                 config=nats.js.api.ConsumerConfig(opt_start_time=start))
        events: list[AuditEvent] = []
        deadline = time.monotonic() + 5.0
        try:
            while time.monotonic() < deadline:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except nats.errors.TimeoutError:
                    break
                try:
                    events.append(decode(msg.data, AuditEvent))
                except msgspec.ValidationError:
                    pass
                if len(events) > limit:
                    events.pop(0)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return events
