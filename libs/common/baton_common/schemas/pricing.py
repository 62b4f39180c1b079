"""The price table: pricing computes it, the negotiator quotes from it.

Pricing is the only writer of ``baton-pricing`` (key ``table``): the base
price, per-gateway prices, per (capability, model) prices and each gateway's
floor and ceiling, all already converted to wei per unit (an exact fraction)
with the ETH/USD rate from ``baton-chain``. It writes a new table when a
setting or the rate changes, and re-puts it every ``TABLE_REFRESH`` seconds.

Pricing never publishes per-quote prices. ``-autoAdjustPrice`` depends on the
sender's face value at quote time, so the negotiator applies it to the price
it looks up here and clamps the result to that gateway's [floor, ceiling]
(:meth:`PriceTable.clamp`). Readers refuse to quote from a table older than
``TABLE_MAX_AGE``.

Bounds: a gateway's :class:`GatewayPrice` floor and ceiling bound its
transcoding price (wei per pixel); a :class:`CapabilityPrice` carries the
floor and ceiling of that (capability, model) price for its gateway, since
an AI unit is not a pixel. Either way the bounds are those of the entry the
price came from: a gateway with an entry of its own is bounded by that entry
alone, any other gateway by ``default``'s. A quote for several capabilities
clamps each capability's price, then sums.

Key ``settings`` holds the operator's own changes (made through pricing's
admin API) as they set them, in their currency (:class:`PriceSettings`), so
they survive a restart; only pricing reads it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated

import msgspec

from .base import Message
from .storage import KvSpec

__all__ = [
    "DEFAULT_GATEWAY",
    "PRICES",
    "SETTINGS_KEY",
    "PRICING_BUCKET",
    "TABLE_KEY",
    "TABLE_MAX_AGE",
    "TABLE_REFRESH",
    "CapabilityPrice",
    "GatewayPrice",
    "PriceRule",
    "PriceSettings",
    "PriceSource",
    "PriceTable",
    "WeiPrice",
    "auto_adjusted",
    "capability_wire_price",
    "wire_price",
]

PRICING_BUCKET = "baton-pricing"
TABLE_KEY = "table"
SETTINGS_KEY = "settings"
TABLE_REFRESH = 60.0
TABLE_MAX_AGE = 3 * TABLE_REFRESH
DEFAULT_GATEWAY = "default"
"""The gateway key that applies to every gateway without its own entry (go-livepeer's ``default``)."""


class WeiPrice(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Wei per unit (pixel, or a pipeline's unit) as an exact fraction, and what the operator set."""

    num: Annotated[int, msgspec.Meta(ge=0)]
    den: Annotated[int, msgspec.Meta(ge=1)] = 1
    configured: str = ""
    """As set, e.g. ``0.5USD`` per ``pixels_per_unit``; for people and the audit log."""

    @property
    def value(self) -> Fraction:
        return Fraction(self.num, self.den)


class GatewayPrice(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One gateway's base price and the bounds every quote to it is clamped to."""

    price: WeiPrice | None = None
    """None: the default gateway's price."""
    floor: WeiPrice | None = None
    ceiling: WeiPrice | None = None


class CapabilityPrice(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    capability: Annotated[int, msgspec.Meta(ge=0)]
    model_id: str
    gateway: str = DEFAULT_GATEWAY
    """Lowercase 0x address, or ``default``."""
    price: WeiPrice
    floor: WeiPrice | None = None
    """No quote of this (capability, model) to this gateway goes below it (after auto-adjust)."""
    ceiling: WeiPrice | None = None


class PriceTable(Message, frozen=True, kw_only=True, tag="price-table.v1"):
    base: WeiPrice
    """-pricePerUnit / -pixelsPerUnit, in wei."""
    currency: str = "wei"
    """The currency the operator priced in; prices here are already in wei."""
    eth_usd: float = 0.0
    """The rate the conversion used (0 when no conversion was needed)."""
    gateways: dict[str, GatewayPrice] = {}
    """By lowercase 0x address, plus ``default`` for the bounds of every other gateway."""
    capabilities: tuple[CapabilityPrice, ...] = ()
    auto_adjust: bool = True
    """go-livepeer's -autoAdjustPrice: the negotiator scales quotes by the ticket overhead."""
    at: Annotated[float, msgspec.Meta(description="Unix time the table was computed.")]
    version: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Goes up by one with every change of a price or bound (not with a re-put of the same table)."""
    eth_usd_updated_at: float = 0.0
    """The price feed's own update time (Unix) of ``eth_usd``; 0 when no conversion was needed."""
    eth_usd_stale: bool = False
    """The feed's last update is older than pricing's limit: USD prices still use ``eth_usd``, the last good rate."""

    def gateway(self, address: str) -> GatewayPrice:
        """That gateway's entry, else the default one."""
        return self.gateways.get(address.lower()) or self.gateways.get(DEFAULT_GATEWAY) or GatewayPrice()

    def base_for(self, address: str) -> Fraction:
        entry = self.gateways.get(address.lower())
        return (entry.price if entry and entry.price else self.base).value

    def capability_price(self, capability: int, model_id: str, address: str) -> Fraction | None:
        """The exact (capability, model) price for that gateway, else its default; None if unpriced."""
        found: dict[str, Fraction] = {}
        for entry in self.capabilities:
            if entry.capability == capability and entry.model_id == model_id:
                found[entry.gateway] = entry.price.value
        return found.get(address.lower(), found.get(DEFAULT_GATEWAY))

    def capability_entry(self, capability: int, model_id: str, address: str) -> CapabilityPrice | None:
        """The (capability, model) entry that prices this gateway: its own, else ``default``'s."""
        found: dict[str, CapabilityPrice] = {}
        for entry in self.capabilities:
            if entry.capability == capability and entry.model_id == model_id:
                found[entry.gateway] = entry
        return found.get(address.lower(), found.get(DEFAULT_GATEWAY))

    def clamp(self, price: Fraction, address: str, *, capability: int | None = None, model_id: str = "") -> Fraction:
        """``price`` (after auto-adjustment) held within that gateway's [floor, ceiling].

        Without ``capability``: the transcoding bounds (the gateway's entry, else ``default``'s).
        With it: the bounds of the (capability, model) entry that prices this gateway.
        """
        bounds: GatewayPrice | CapabilityPrice | None
        if capability is None:
            bounds = self.gateway(address)
        else:
            bounds = self.capability_entry(capability, model_id, address)
        if bounds is None:
            return price
        if bounds.floor is not None and price < bounds.floor.value:
            price = bounds.floor.value
        if bounds.ceiling is not None and price > bounds.ceiling.value:
            price = bounds.ceiling.value
        return price


class PriceSource(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A price as the operator set it: ``amount`` ``currency`` per ``pixels_per_unit`` units."""

    amount: str
    """An exact decimal, e.g. ``0.5`` or ``1000``."""
    currency: str = "wei"
    """``wei``, ``eth`` or a currency the price feed quotes against ETH (``USD``)."""
    pixels_per_unit: Annotated[int, msgspec.Meta(ge=1)] = 1


class PriceRule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The operator's price and bounds for one gateway and one capability (or transcoding)."""

    gateway: str = DEFAULT_GATEWAY
    capability: int | None = None
    """None: the transcoding price per pixel."""
    model_id: str = ""
    price: PriceSource | None = None
    floor: PriceSource | None = None
    ceiling: PriceSource | None = None


class PriceSettings(Message, frozen=True, kw_only=True, tag="price-settings.v1"):
    """Key ``settings``: the rules changed through the admin API; each replaces the configured rule for its key."""

    rules: tuple[PriceRule, ...] = ()
    version: Annotated[int, msgspec.Meta(ge=0)] = 0
    at: float = 0.0


_INT64_MAX = 2**63 - 1


def auto_adjusted(price: Fraction, tx_cost_multiplier: Fraction) -> Fraction:
    """go-livepeer's -autoAdjustPrice: price * (1 + 1/multiplier), truncated to 1/1000 wei.

    ``tx_cost_multiplier`` = the sender's face value / the redemption's tx cost.
    A zero price, or a multiplier that is not above 0, is not adjusted (overhead 1) but still truncated.
    """
    overhead = Fraction(1)
    if price > 0 and tx_cost_multiplier > 0:
        overhead += 1 / tx_cost_multiplier
    return Fraction(int(price * overhead * 1000), 1000)  # int() truncates toward zero, as big.Float.Int64


def wire_price(price: Fraction) -> tuple[int, int]:
    """PriceInfo (pricePerUnit, pixelsPerUnit): the reduced fraction, or floor(price)/1 if it does not fit in int64."""
    if price.numerator <= _INT64_MAX and price.denominator <= _INT64_MAX:
        return price.numerator, price.denominator
    return min(price.numerator // price.denominator, _INT64_MAX), 1


def capability_wire_price(price: Fraction) -> int:
    """A capabilities_prices entry's pricePerUnit (pixelsPerUnit 1): floor(price); a sub-wei price becomes 0."""
    return min(price.numerator // price.denominator, _INT64_MAX)


PRICES = KvSpec(
    bucket=PRICING_BUCKET,
    key=f"{TABLE_KEY} | {SETTINGS_KEY}",
    ttl=None,
    history=1,
    writer="pricing",
    readers=("negotiator", "monitor"),
    schema="pricing.PriceTable (table), pricing.PriceSettings (settings, read by pricing alone)",
    purpose="the one price table in wei; the negotiator applies auto-adjust and clamps per quote",
)
