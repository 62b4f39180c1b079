"""The price book: the one place a price changes, is published, kept and audited.

Every change takes one lock: the rules change in memory (refused there,
changing nothing, if they cannot price), the settings are put, the table is
put (readers watching ``baton-pricing`` see it within milliseconds), then the
audit event is appended. If a write fails, the change is undone and the
previous table put back, so what readers see and what the audit log says
never part.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from baton_common.schemas.audit import AuditEvent
from baton_common.schemas.pricing import TABLE_REFRESH, PriceSettings, PriceTable

from . import metrics
from .bus import PriceStore
from .domain import Pricer, Rate, Rule, RuleKey, describe_key
from .errors import PricingError
from .inputs import Source

__all__ = ["PriceBook", "rule_json"]

log = logging.getLogger("baton.pricing")


STALENESS_CHECK = 1.0
"""Seconds between two looks at the clock: a rate going stale shows in the table within this."""


class StoreUnavailable(PricingError):
    code = "unavailable"
    status_code = 503


class PriceBook:
    def __init__(self, pricer: Pricer, store: PriceStore, *, clock: Callable[[], float] = time.time,
                 refresh: float = TABLE_REFRESH) -> None:
        self.pricer = pricer
        self.store = store
        self.clock = clock
        self.refresh = refresh
        self.lock = asyncio.Lock()
        self.table: PriceTable | None = None

    async def start(self) -> None:
        """Re-apply the API's kept changes, then publish the first table (unless a USD price still waits for the rate)."""
        kept = await self.store.settings()
        if kept is not None:
            for problem in self.pricer.restore(kept.rules, self.clock()):
                log.error("a kept price change no longer applies; skipped", extra={"problem": problem})
        async with self.lock:
            await self._publish(force=True)

    # -- changes ---------------------------------------------------------------

    async def set(self, key: RuleKey, rule: Rule, *, actor: str, reason: str, action: str = "prices.set") -> AuditEvent:
        async with self.lock:
            before_overrides = dict(self.pricer.overrides)
            old, new = self.pricer.set_rule(key, rule, self.clock())
            return await self._commit(key, old, new, before_overrides, actor=actor, reason=reason, action=action)

    async def update(self, key: RuleKey, changes: dict[str, Source | None], *, actor: str, reason: str) -> AuditEvent:
        """Change some of one rule's price, floor and ceiling (None removes one), the rest as they are now."""
        async with self.lock:
            before_overrides = dict(self.pricer.overrides)
            current = self.pricer.rule(key)
            rule = Rule(**{"price": current.price, "floor": current.floor, "ceiling": current.ceiling, **changes})
            old, new = self.pricer.set_rule(key, rule, self.clock())
            return await self._commit(key, old, new, before_overrides, actor=actor, reason=reason, action="prices.set")

    async def reset(self, key: RuleKey, *, actor: str, reason: str) -> AuditEvent:
        async with self.lock:
            before_overrides = dict(self.pricer.overrides)
            old, new = self.pricer.reset_rule(key, self.clock())
            return await self._commit(key, old, new, before_overrides, actor=actor, reason=reason, action="prices.reset")

    async def _commit(self, key: RuleKey, old: Rule, new: Rule, before: dict[RuleKey, Rule], *, actor: str,
                      reason: str, action: str) -> AuditEvent:
        now = self.clock()
        previous_table = self.table
        event = AuditEvent(event_id=str(uuid.uuid4()), at=now, actor=actor, service="pricing", area="prices",
                           action=action, target=describe_key(key), old=rule_json(old), new=rule_json(new),
                           reason=reason)
        try:
            await self.store.put_settings(PriceSettings(rules=self.pricer.overrides_as_rules(),
                                                        version=self.pricer.version + 1, at=now))
            await self._publish(force=False, raise_errors=True)
            await self.store.audit(event)
        except Exception as exc:
            self.pricer.overrides = before
            try:
                await self.store.put_settings(PriceSettings(rules=self.pricer.overrides_as_rules(),
                                                            version=self.pricer.version, at=now))
                if previous_table is not None:
                    await self._publish(force=True)
            except Exception:
                log.exception("could not put the previous prices back after a failed change")
            metrics.CHANGES.labels("failed").inc()
            raise StoreUnavailable(f"the change could not be stored or audited ({type(exc).__name__}); nothing changed") from None
        metrics.CHANGES.labels("applied").inc()
        log.info("price changed", extra={"actor": actor, "target": event.target, "old": event.old, "new": event.new,
                                         "reason": reason, "version": self.table.version if self.table else 0})
        return event

    # -- rate and refresh ------------------------------------------------------

    async def on_rate(self, rate: Rate) -> None:
        async with self.lock:
            now = self.clock()
            was_stale = self.pricer.rate_stale
            if not self.pricer.update_rate(rate, now):
                log.warning("ignored an ETH/USD reading older than the one in use",
                            extra={"updated_at": rate.updated_at})
            self._log_staleness(was_stale)
            await self._publish(force=False)

    async def run_refresh(self) -> None:
        """Re-put the table every ``refresh`` seconds (readers refuse an old one) and notice a rate going stale."""
        while True:
            await asyncio.sleep(STALENESS_CHECK)
            async with self.lock:
                was_stale = self.pricer.rate_stale
                self.pricer.check_staleness(self.clock())
                self._log_staleness(was_stale)
                due = self.table is None or self.clock() - self.table.at >= self.refresh
                await self._publish(force=due)

    def _log_staleness(self, was_stale: bool) -> None:
        rate = self.pricer.rate
        if rate is None:
            return
        if self.pricer.rate_stale and not was_stale:
            log.warning("the ETH/USD rate is stale: USD prices keep the last good rate",
                        extra={"rate": float(rate.value), "feed_updated_at": rate.updated_at,
                               "max_age": self.pricer.max_rate_age})
        elif was_stale and not self.pricer.rate_stale:
            log.info("the ETH/USD rate is fresh again", extra={"rate": float(rate.value)})

    async def _publish(self, *, force: bool, raise_errors: bool = False) -> None:
        now = self.clock()
        rate = self.pricer.rate
        metrics.observe_rate(float(rate.value) if rate else 0.0, self.pricer.rate_stale,
                             0.0 if rate is None or rate.fixed else max(0.0, now - rate.updated_at))
        try:
            table, changed = self.pricer.table(now)
        except PricingError as exc:  # a USD price before the first rate, or a rate that makes a price unusable
            if raise_errors:
                raise
            log.warning("no price table to publish yet" if self.table is None else "keeping the last price table",
                        extra={"reason": exc.message})
            return
        if not (changed or force):
            return
        try:
            await self.store.put_table(table)
        except Exception:
            metrics.PUBLISH_ERRORS.inc()
            if raise_errors:
                raise
            log.exception("could not put the price table")
            return
        self.table = table
        metrics.TABLE_PUBLISHED_AT.set(now)
        metrics.observe(table)
        if changed:
            log.info("price table published", extra={"version": table.version})


def source_json(source: Source | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {"price": source.text, "amount": _amount(source), "currency": source.currency,
            "pixels_per_unit": source.pixels_per_unit}


def _amount(source: Source) -> str:
    a = source.amount
    return str(a.numerator) if a.denominator == 1 else f"{a.numerator}/{a.denominator}"


def rule_json(rule: Rule) -> dict[str, Any]:
    return {"price": source_json(rule.price), "floor": source_json(rule.floor), "ceiling": source_json(rule.ceiling)}
