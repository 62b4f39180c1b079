"""Settings of the pricing service (environment `BATON_PRICING_<NAME>`), and the price rules they give."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

from baton_common.aimodels import parse_ai_models
from baton_common.capabilities import pipeline_by_name
from baton_common.config import CommonSettings, ConfigError, setting
from baton_common.schemas.pricing import DEFAULT_GATEWAY

from .domain import BASE, Rate, Rule, RuleKey
from .errors import InvalidPrice
from .inputs import (
    Source,
    ai_model_source,
    go_rat,
    parse_gateway,
    parse_gateway_prices,
    parse_pixels_per_unit,
    parse_price_per_unit,
)

__all__ = ["PricingSettings", "fixed_rate", "load_rules"]


class PricingSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7936
    price_per_unit: Annotated[
        str,
        setting(
            "Transcoding price for every gateway without its own, as go-livepeer's -pricePerUnit: `<price><currency>` "
            "with currency wei (none), eth or USD, e.g. `1200`, `0.5USD`. Required on-chain unless every -aiModels "
            "entry has its own price; offchain it defaults to 0.",
            flag="pricePerUnit",
        ),
    ] = ""
    pixels_per_unit: Annotated[
        str, setting("Pixels (or units) the -pricePerUnit buys: a whole number above 0 (go-livepeer's -pixelsPerUnit).",
                     flag="pixelsPerUnit")
    ] = "1"
    price_per_gateway: Annotated[
        str,
        setting(
            'Per-gateway prices, as go-livepeer\'s -pricePerGateway: JSON or a file holding `{"gateways":[{"ethaddress":'
            '"0x…","priceperunit":0.5,"currency":"USD","pixelsperunit":1}]}` (numbers unquoted).',
            flag="pricePerGateway",
        ),
    ] = ""
    price_per_broadcaster: Annotated[
        str, setting("Deprecated name of -pricePerGateway (key `broadcasters`); used when -pricePerGateway is empty.",
                     flag="pricePerBroadcaster")
    ] = ""
    price_bounds: Annotated[
        str,
        setting(
            'Floors and ceilings per gateway and per capability: JSON or a file holding `{"bounds":[{"gateway":"0x…"|'
            '"default","pipeline":"llm","model_id":"…","floor":"0.4USD","ceiling":"1USD","pixels_per_unit":1}]}`; '
            "without pipeline a bound is on the transcoding price per pixel. The negotiator clamps every quote "
            "(after -autoAdjustPrice) to them.",
        ),
    ] = ""
    eth_usd_rate: Annotated[
        str,
        setting(
            "A fixed ETH/USD rate (e.g. `3000.25`) for USD prices, instead of the chain service's price feed; "
            "offchain it is the only source. Empty: read `eth-usd` from baton-chain.",
        ),
    ] = ""
    eth_usd_max_age: Annotated[
        float,
        setting(
            "Seconds after the feed's own last update when the rate is stale (keep it above the feed's heartbeat): "
            "USD prices keep the last good rate, and baton_pricing_eth_usd_stale goes to 1.",
            ge=60,
        ),
    ] = 7200.0
    admin_addr: Annotated[
        str, setting("host:port of the admin API (prices, audit history, /schema); empty turns it off. Keep it on loopback.")
    ] = ""
    admin_tokens_file: Annotated[
        str,
        setting(
            "File of the admin API's bearer tokens, one per line: `<holder> <role> <token>`, role `admin` or "
            "`read-only`; `#` starts a comment. The holder is who the audit log names.",
        ),
    ] = ""


def fixed_rate(settings: PricingSettings) -> Rate | None:
    """The configured ETH/USD rate, if any; ConfigError naming the setting."""
    text = settings.eth_usd_rate.strip()
    if not text:
        return None
    value = go_rat(text)
    if value is None or value <= 0:
        raise ConfigError(f"pricing: BATON_PRICING_ETH_USD_RATE must be a number above 0, e.g. 3000.25; got {text!r}")
    return Rate(value=value, eth_is_base=True, feed="config", fixed=True)


def load_rules(settings: PricingSettings) -> dict[RuleKey, Rule]:
    """The configured rules: base price, per-gateway prices, per-model prices, bounds; ConfigError naming the setting."""
    try:
        return _rules(settings)
    except InvalidPrice as exc:
        raise ConfigError(f"pricing: {exc.message}") from None


def _rules(settings: PricingSettings) -> dict[RuleKey, Rule]:
    pixels = parse_pixels_per_unit(settings.pixels_per_unit, "-pixelsPerUnit (BATON_PRICING_PIXELS_PER_UNIT)")
    models = parse_ai_models(settings.ai_models)
    base: Source | None = None
    if settings.price_per_unit.strip():
        amount, currency = parse_price_per_unit(settings.price_per_unit.strip(),
                                                "-pricePerUnit (BATON_PRICING_PRICE_PER_UNIT)")
        base = Source(amount=amount, currency=currency, pixels_per_unit=pixels)
    elif settings.network != "offchain" and (not models or any(m.price_per_unit is None for m in models)):
        raise InvalidPrice("-pricePerUnit (BATON_PRICING_PRICE_PER_UNIT) must be set on-chain, so that no work is "
                           "done for free (only an orchestrator whose every -aiModels entry has a price may leave it out)")
    rules: dict[RuleKey, Rule] = {BASE: Rule(price=base or Source(amount=Fraction(0), pixels_per_unit=pixels))}

    gateways_value, where = settings.price_per_gateway, "-pricePerGateway (BATON_PRICING_PRICE_PER_GATEWAY)"
    if not gateways_value.strip() and settings.price_per_broadcaster.strip():
        gateways_value, where = settings.price_per_broadcaster, "-pricePerBroadcaster (BATON_PRICING_PRICE_PER_BROADCASTER)"
    for gateway, source in parse_gateway_prices(gateways_value, where).items():
        rules[(gateway, None, "")] = Rule(price=source)

    for model in models:
        key = (model.gateway, model.capability, model.model_id)
        rules[key] = Rule(price=ai_model_source(model, base, f"-aiModels (BATON_AI_MODELS) {model.pipeline} {model.model_id}"))

    for key, floor, ceiling in _bounds(settings.price_bounds):
        old = rules.get(key, Rule())
        rules[key] = Rule(price=old.price, floor=floor, ceiling=ceiling)
    return rules


def _bounds(value: str) -> list[tuple[RuleKey, Source | None, Source | None]]:
    where = "BATON_PRICING_PRICE_BOUNDS"
    value = value.strip()
    if not value:
        return []
    if not value.startswith("{") and Path(value).is_file():
        where = f"{where} ({value})"
        value = Path(value).read_text()
    try:
        raw = json.loads(value, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InvalidPrice(f"{where}: not JSON nor a file: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("bounds"), list):
        raise InvalidPrice(f'{where}: must be {{"bounds": [...]}}')
    out: list[tuple[RuleKey, Source | None, Source | None]] = []
    seen: set[RuleKey] = set()
    known = {"gateway", "pipeline", "model_id", "floor", "ceiling", "pixels_per_unit"}
    for n, entry in enumerate(raw["bounds"]):
        at = f"{where}: bounds[{n}]"
        if not isinstance(entry, dict):
            raise InvalidPrice(f"{at} must be a JSON object")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise InvalidPrice(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        gateway = parse_gateway(_string(entry, "gateway", at, DEFAULT_GATEWAY), at)
        pipeline, model = _string(entry, "pipeline", at, ""), _string(entry, "model_id", at, "")
        capability = None
        if pipeline:
            try:
                capability = pipeline_by_name(pipeline).capability
            except KeyError as exc:
                raise InvalidPrice(f"{at}: {exc.args[0]}") from None
            if not model:
                raise InvalidPrice(f"{at}: a pipeline's bound needs its model_id")
        elif model:
            raise InvalidPrice(f"{at}: model_id without pipeline")
        pixels = parse_pixels_per_unit(entry.get("pixels_per_unit", 1), f"{at}: pixels_per_unit")
        floor, ceiling = (_bound(entry, k, at, pixels) for k in ("floor", "ceiling"))
        if floor is None and ceiling is None:
            raise InvalidPrice(f"{at}: give a floor, a ceiling or both")
        key = (gateway, capability, model)
        if key in seen:
            raise InvalidPrice(f"{at}: a second entry for the same gateway, pipeline and model")
        seen.add(key)
        out.append((key, floor, ceiling))
    return out


def _string(entry: dict[str, Any], key: str, where: str, default: str) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise InvalidPrice(f"{where}: {key} must be a string")
    return value


def _bound(entry: dict[str, Any], key: str, where: str, pixels: int) -> Source | None:
    if key not in entry:
        return None
    text = entry[key]
    if not isinstance(text, str):
        raise InvalidPrice(f'{where}: {key} must be a string such as "1000" or "0.5USD"')
    amount, currency = parse_price_per_unit(text, f"{where}: {key}")
    return Source(amount=amount, currency=currency, pixels_per_unit=pixels)
