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
    "PRICING_BUCKET",
    "TABLE_KEY",
    "TABLE_MAX_AGE",
    "TABLE_REFRESH",
    "CapabilityPrice",
    "GatewayPrice",
    "PriceTable",
    "WeiPrice",
]

PRICING_BUCKET = "baton-pricing"
TABLE_KEY = "table"
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

    def clamp(self, price: Fraction, address: str) -> Fraction:
        """``price`` (after auto-adjustment) held within that gateway's [floor, ceiling]."""
        bounds = self.gateway(address)
        if bounds.floor is not None and price < bounds.floor.value:
            price = bounds.floor.value
        if bounds.ceiling is not None and price > bounds.ceiling.value:
            price = bounds.ceiling.value
        return price


PRICES = KvSpec(
    bucket=PRICING_BUCKET,
    key=TABLE_KEY,
    ttl=None,
    history=1,
    writer="pricing",
    readers=("negotiator", "monitor"),
    schema="pricing.PriceTable",
    purpose="the one price table in wei; the negotiator applies auto-adjust and clamps per quote",
)
