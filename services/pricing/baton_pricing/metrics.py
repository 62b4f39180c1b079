"""Every metric of the pricing service.

go-livepeer's ``livepeer_price_per_capability`` (wei per unit, by ``pipeline``
and ``model_name``, the default gateway's price). go-livepeer's
``livepeer_transcoding_price`` is the price a GetOrchestrator quotes (its
``PriceInfo``, auto-adjusted), so the negotiator exports it; the table's base
price per pixel is ``baton_pricing_transcoding_price_wei`` here (by ``sender``:
a gateway's address, or ``default``). Baton's own: the effective price (the
table's price held within its bounds) for each gateway and capability, the
rate and whether it is stale, the table's version, changes and publish errors.
"""

from __future__ import annotations

from fractions import Fraction

from prometheus_client import Counter, Gauge

from baton_common.capabilities import pipeline_by_capability
from baton_common.schemas.pricing import DEFAULT_GATEWAY, PriceTable

__all__ = ["observe", "observe_rate"]

TRANSCODING_PRICE = Gauge("baton_pricing_transcoding_price_wei",
                          "The table's base transcoding price per pixel in wei, per gateway (sender), before the "
                          "negotiator's auto-adjust and bounds (its quote is livepeer_transcoding_price).", ["sender"])
PRICE_PER_CAPABILITY = Gauge("livepeer_price_per_capability", "Price per unit in wei of a pipeline and model.",
                             ["pipeline", "model_name"])
EFFECTIVE_PRICE = Gauge(
    "baton_pricing_effective_price_wei",
    "Price per unit in wei within its floor and ceiling, before the negotiator's auto-adjust; pipeline "
    "'transcoding' is the price per pixel.",
    ["gateway", "pipeline", "model_id"],
)
FLOOR = Gauge("baton_pricing_floor_wei", "Floor per unit in wei.", ["gateway", "pipeline", "model_id"])
CEILING = Gauge("baton_pricing_ceiling_wei", "Ceiling per unit in wei.", ["gateway", "pipeline", "model_id"])
ETH_USD = Gauge("baton_pricing_eth_usd", "The ETH/USD rate USD prices are converted with (0: none needed yet).")
ETH_USD_STALE = Gauge("baton_pricing_eth_usd_stale",
                      "1 while the feed's last update is older than BATON_PRICING_ETH_USD_MAX_AGE (the last good rate is kept).")
ETH_USD_AGE = Gauge("baton_pricing_eth_usd_age_seconds", "Seconds since the feed's own last update (0 for a fixed rate).")
TABLE_VERSION = Gauge("baton_pricing_table_version", "Version of the last price table published.")
TABLE_PUBLISHED_AT = Gauge("baton_pricing_table_published_timestamp_seconds", "When the price table was last put.")
CHANGES = Counter("baton_pricing_changes", "Price changes asked for through the admin API, by outcome.", ["outcome"])
PUBLISH_ERRORS = Counter("baton_pricing_publish_errors", "Price tables that could not be put into baton-pricing.")

_shown: set[tuple[object, ...]] = set()


def observe(table: PriceTable) -> None:
    """Set the price gauges from a newly published table; series of removed entries go away."""
    seen: set[tuple[object, ...]] = set()

    def put(gauge: Gauge, labels: tuple[str, ...], value: Fraction) -> None:
        gauge.labels(*labels).set(float(value))
        seen.add((gauge, labels))

    TRANSCODING_PRICE.labels(DEFAULT_GATEWAY).set(float(table.base.value))
    seen.add((TRANSCODING_PRICE, (DEFAULT_GATEWAY,)))
    gateways = {DEFAULT_GATEWAY, *table.gateways}
    for gateway in sorted(gateways):
        base = table.base_for(gateway)
        put(TRANSCODING_PRICE, (gateway,), base)
        labels = (gateway, "transcoding", "")
        put(EFFECTIVE_PRICE, labels, table.clamp(base, gateway))
        bounds = table.gateway(gateway)
        if bounds.floor is not None:
            put(FLOOR, labels, bounds.floor.value)
        if bounds.ceiling is not None:
            put(CEILING, labels, bounds.ceiling.value)
    for entry in table.capabilities:
        pipeline = pipeline_by_capability(entry.capability)
        name = pipeline.name if pipeline else str(entry.capability)
        if entry.gateway == DEFAULT_GATEWAY:
            put(PRICE_PER_CAPABILITY, (name, entry.model_id), entry.price.value)
        labels = (entry.gateway, name, entry.model_id)
        put(EFFECTIVE_PRICE, labels, table.clamp(entry.price.value, entry.gateway, capability=entry.capability,
                                                 model_id=entry.model_id))
        if entry.floor is not None:
            put(FLOOR, labels, entry.floor.value)
        if entry.ceiling is not None:
            put(CEILING, labels, entry.ceiling.value)
    for gauge, labels in _shown - seen:
        try:
            gauge.remove(*labels)  # type: ignore[attr-defined]
        except KeyError:
            pass
    _shown.clear()
    _shown.update(seen)
    TABLE_VERSION.set(table.version)


def observe_rate(rate: float, stale: bool, age: float) -> None:
    ETH_USD.set(rate)
    ETH_USD_STALE.set(1 if stale else 0)
    ETH_USD_AGE.set(age)
