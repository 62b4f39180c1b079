"""The price table from the operator's rules and the ETH/USD rate: pure, exact arithmetic.

A *rule* is what the operator set for one key (gateway, capability, model):
a price, a floor and a ceiling, each in its own currency
(:class:`~.inputs.Source`). The configuration gives the first rules
(``-pricePerUnit``, ``-pricePerGateway``, ``-aiModels``, the bounds setting);
a change through the admin API replaces the rule for its key (an *override*).
:meth:`Pricer.table` turns the rules into the published
:class:`~baton_common.schemas.pricing.PriceTable`, in wei per unit, exactly:

- wei per unit = pricePerUnit / pixelsPerUnit, times 1 (wei), 1e18 (eth) or,
  for USD, 1e18 / rate (an ETH/USD feed; 1e18 * rate for USD/ETH), with
  rate = answer / 10**decimals; every step a reduced fraction.
- A (capability, model) rule of a gateway without a price of its own takes
  the ``default`` gateway's price for it, with its own bounds.
- A rate whose feed update is older than ``max_rate_age`` is stale: the last
  good rate stays in use, and the table says so.

Auto-adjustment and clamping happen per quote, in the negotiator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

import msgspec

from baton_common.capabilities import pipeline_by_capability
from baton_common.schemas.chain import EthUsdRate
from baton_common.schemas.pricing import (
    DEFAULT_GATEWAY,
    CapabilityPrice,
    GatewayPrice,
    PriceRule,
    PriceSource,
    PriceTable,
    WeiPrice,
)

from .errors import InvalidPrice, NoRate, UnknownRule
from .inputs import INT64_MAX, Source, go_rat, normalize_currency

__all__ = ["BASE", "WEI_PER_ETH", "Pricer", "Rate", "Rule", "RuleKey", "describe_key", "wei_per_unit"]

WEI_PER_ETH = 10**18
RuleKey = tuple[str, int | None, str]
"""(gateway, capability or None for transcoding, model_id)."""
BASE: RuleKey = (DEFAULT_GATEWAY, None, "")


@dataclass(frozen=True)
class Rate:
    """The ETH/USD price feed's answer, exactly."""

    value: Fraction
    """answer / 10**decimals."""
    eth_is_base: bool = True
    updated_at: float = 0.0
    """The feed's own update time (Unix)."""
    feed: str = ""
    fixed: bool = False
    """A rate from the configuration: never stale."""

    @classmethod
    def from_chain(cls, rate: EthUsdRate) -> Rate:
        return cls(Fraction(rate.answer, 10**rate.decimals), rate.eth_is_base, rate.updated_at, rate.feed)


@dataclass(frozen=True)
class Rule:
    price: Source | None = None
    floor: Source | None = None
    ceiling: Source | None = None

    @property
    def empty(self) -> bool:
        return self.price is None and self.floor is None and self.ceiling is None

    def sources(self) -> list[Source]:
        return [s for s in (self.price, self.floor, self.ceiling) if s is not None]


def wei_per_unit(source: Source, rate: Rate | None) -> Fraction:
    """Wei per single unit: go-livepeer's pricePerUnit / pixelsPerUnit times the currency's multiplier."""
    per_unit = source.per_unit
    if source.currency == "wei":
        return per_unit
    if source.currency == "eth":
        return per_unit * WEI_PER_ETH
    if rate is None:
        raise NoRate(f"{source.text} needs the ETH/USD rate, and none has been read yet")
    if rate.value <= 0:
        raise NoRate(f"the ETH/USD feed answered {rate.value}, which cannot convert {source.text}")
    eth_per_currency = 1 / rate.value if rate.eth_is_base else rate.value
    return per_unit * eth_per_currency * WEI_PER_ETH


def describe_key(key: RuleKey) -> str:
    """``default``, ``0xab…/llm/model`` — the audit log's target."""
    gateway, capability, model = key
    if capability is None:
        return gateway
    pipeline = pipeline_by_capability(capability)
    return f"{gateway}/{pipeline.name if pipeline else capability}/{model}"


class Pricer:
    """The rules, the rate, and the table they make; one instance per pricing process."""

    def __init__(self, configured: Mapping[RuleKey, Rule], *, auto_adjust: bool = True,
                 max_rate_age: float = 7200.0) -> None:
        if BASE not in configured or configured[BASE].price is None:
            raise InvalidPrice("the default transcoding price (-pricePerUnit) is missing")
        self.configured = dict(configured)
        self.overrides: dict[RuleKey, Rule] = {}
        self.auto_adjust = auto_adjust
        self.max_rate_age = max_rate_age
        self.rate: Rate | None = None
        self.rate_stale = False
        self.version = 0
        self._published: PriceTable | None = None

    # -- rules ---------------------------------------------------------------

    def rules(self, overrides: Mapping[RuleKey, Rule] | None = None) -> dict[RuleKey, Rule]:
        """The rules in force: the configured ones, each override replacing its key; empty rules dropped."""
        merged = {**self.configured, **(self.overrides if overrides is None else overrides)}
        return {key: rule for key, rule in merged.items() if not rule.empty}

    def rule(self, key: RuleKey) -> Rule:
        return self.rules().get(key, Rule())

    def needs_rate(self) -> bool:
        return any(s.currency == "USD" for rule in self.rules().values() for s in rule.sources())

    def set_rule(self, key: RuleKey, rule: Rule, now: float) -> tuple[Rule, Rule]:
        """Make ``rule`` the rule for ``key``; (old, new). InvalidPrice or NoRate, changing nothing, if it cannot price."""
        if key == BASE and rule.price is None:
            raise InvalidPrice("the default transcoding price cannot be removed; set another one")
        old = self.rule(key)
        trial = {**self.overrides, key: rule}
        self.build(now, self.rules(trial))  # raises before anything changes
        self.overrides = trial
        return old, rule

    def reset_rule(self, key: RuleKey, now: float) -> tuple[Rule, Rule]:
        """Drop the API's change for ``key``: the configured rule applies again; (old, new)."""
        if key not in self.overrides:
            raise UnknownRule(f"no change made through the API for {describe_key(key)}: it is as configured")
        old = self.rule(key)
        trial = {k: v for k, v in self.overrides.items() if k != key}
        self.build(now, self.rules(trial))
        self.overrides = trial
        return old, self.rule(key)

    # -- the rate ------------------------------------------------------------

    def update_rate(self, rate: Rate, now: float) -> bool:
        """Take a new reading of the feed; whether it is used. A stale one is used only if it is newer than ours."""
        stale = not rate.fixed and now - rate.updated_at > self.max_rate_age
        used = self.rate is None or not stale or rate.updated_at > self.rate.updated_at
        if used:
            self.rate = rate
        self.check_staleness(now)
        return used

    def check_staleness(self, now: float) -> bool:
        """Whether the rate in use is stale now (time passes without a new reading)."""
        rate = self.rate
        self.rate_stale = rate is not None and not rate.fixed and now - rate.updated_at > self.max_rate_age
        return self.rate_stale

    # -- the table -------------------------------------------------------------

    def build(self, now: float, rules: Mapping[RuleKey, Rule] | None = None) -> PriceTable:
        """The table for ``rules`` (default: those in force) at the current rate; InvalidPrice or NoRate if it cannot be made."""
        rules = self.rules() if rules is None else rules
        if BASE not in rules or rules[BASE].price is None:
            raise InvalidPrice("the default transcoding price is missing")
        uses_rate = any(s.currency == "USD" for rule in rules.values() for s in rule.sources())
        rate = self.rate

        def wei(source: Source | None, key: RuleKey, what: str) -> WeiPrice | None:
            if source is None:
                return None
            value = wei_per_unit(source, rate)
            if value >= INT64_MAX + 1:
                raise InvalidPrice(f"{describe_key(key)}: {what} {source.text} is {int(value)} wei per unit, above what a "
                                   "PriceInfo carries (2^63-1)")
            return WeiPrice(num=value.numerator, den=value.denominator, configured=source.text)

        gateways: dict[str, GatewayPrice] = {}
        capabilities: list[CapabilityPrice] = []
        for key, rule in sorted(rules.items(), key=lambda kv: (kv[0][1] is not None, kv[0][1] or 0, kv[0][2], kv[0][0])):
            gateway, capability, model = key
            floor, ceiling = wei(rule.floor, key, "floor"), wei(rule.ceiling, key, "ceiling")
            if floor is not None and ceiling is not None and floor.value > ceiling.value:
                raise InvalidPrice(f"{describe_key(key)}: floor {rule.floor.text} is above ceiling "  # type: ignore[union-attr]
                                   f"{rule.ceiling.text} ({floor.value} > {ceiling.value} wei per unit)")  # type: ignore[union-attr]
            if capability is None:
                price = None if key == BASE else wei(rule.price, key, "price")
                if price is not None or floor is not None or ceiling is not None:
                    gateways[gateway] = GatewayPrice(price=price, floor=floor, ceiling=ceiling)
                continue
            source = rule.price
            if source is None and gateway != DEFAULT_GATEWAY:
                source = rules.get((DEFAULT_GATEWAY, capability, model), Rule()).price
            if source is None:
                raise InvalidPrice(f"{describe_key(key)}: bounds need a price for this capability and model "
                                   "(for the gateway or for default); set a price first")
            price = wei(source, key, "price")
            assert price is not None
            capabilities.append(CapabilityPrice(capability=capability, model_id=model, gateway=gateway, price=price,
                                                floor=floor, ceiling=ceiling))
        base = wei(rules[BASE].price, BASE, "price")
        assert base is not None
        return PriceTable(
            base=base,
            currency=rules[BASE].price.currency,  # type: ignore[union-attr]
            eth_usd=float(rate.value) if uses_rate and rate else 0.0,
            eth_usd_updated_at=rate.updated_at if uses_rate and rate else 0.0,
            eth_usd_stale=self.rate_stale if uses_rate else False,
            gateways=gateways,
            capabilities=tuple(capabilities),
            auto_adjust=self.auto_adjust,
            at=now,
            version=self.version,
        )

    def table(self, now: float) -> tuple[PriceTable, bool]:
        """The table to publish now, and whether it differs from the last one (then its version is one higher)."""
        table = self.build(now)
        last = self._published
        changed = last is None or _content(table) != _content(last)
        if changed:
            self.version += 1
        table = msgspec.structs.replace(table, version=self.version)
        self._published = table
        return table, changed

    # -- settings kept across restarts ----------------------------------------

    def overrides_as_rules(self) -> tuple[PriceRule, ...]:
        return tuple(
            PriceRule(gateway=g, capability=c, model_id=m, price=_to_schema(r.price), floor=_to_schema(r.floor),
                      ceiling=_to_schema(r.ceiling))
            for (g, c, m), r in sorted(self.overrides.items(), key=lambda kv: describe_key(kv[0]))
        )

    def restore(self, rules: tuple[PriceRule, ...], now: float) -> list[str]:
        """Re-apply the API's changes kept in KV; those that no longer price (a bad value, no rate yet) are skipped, named."""
        skipped = []
        for r in rules:
            key = (r.gateway, r.capability, r.model_id)
            try:
                rule = Rule(_from_schema(r.price), _from_schema(r.floor), _from_schema(r.ceiling))
                self.set_rule(key, rule, now)
            except (InvalidPrice, NoRate) as exc:
                if isinstance(exc, NoRate):  # keep it: it prices once the rate arrives
                    self.overrides[key] = rule
                else:
                    skipped.append(f"{describe_key(key)}: {exc.message}")
        return skipped


def _content(table: PriceTable) -> PriceTable:
    return msgspec.structs.replace(table, at=0.0, version=0)


def _to_schema(source: Source | None) -> PriceSource | None:
    if source is None:
        return None
    amount = source.amount
    text = str(amount.numerator) if amount.denominator == 1 else f"{amount.numerator}/{amount.denominator}"
    return PriceSource(amount=text, currency=source.currency, pixels_per_unit=source.pixels_per_unit)


def _from_schema(source: PriceSource | None) -> Source | None:
    if source is None:
        return None
    amount = go_rat(source.amount)
    if amount is None or amount < 0:
        raise InvalidPrice(f"stored amount {source.amount!r} is not a price")
    return Source(amount=amount, currency=normalize_currency(source.currency, "stored settings"),
                  pixels_per_unit=source.pixels_per_unit)


def with_changes(rule: Rule, **changes: Source | None) -> Rule:
    return replace(rule, **changes)
