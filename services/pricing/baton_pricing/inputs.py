"""go-livepeer's price inputs, read exactly: ``-pricePerUnit``, ``-pixelsPerUnit``, ``-pricePerGateway``, ``-aiModels``.

Spec/livepeer-wire.md section 4. Amounts are exact fractions (Go's ``big.Rat``);
nothing here touches a float. Every error names the setting it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from baton_common.aimodels import AIModel
from baton_common.schemas.pricing import DEFAULT_GATEWAY

from .errors import InvalidPrice

__all__ = [
    "INT64_MAX",
    "Source",
    "go_rat",
    "normalize_currency",
    "parse_gateway",
    "parse_gateway_prices",
    "parse_pixels_per_unit",
    "parse_price_per_unit",
    "ai_model_source",
]

INT64_MAX = 2**63 - 1
PRICE_PER_UNIT = re.compile(r"(\d+(\.\d+)?)([A-z][A-z0-9]*)?", re.ASCII)
"""go-livepeer's ``^(\\d+(\\.\\d+)?)([A-z][A-z0-9]*)?$``, applied with fullmatch (Go's ``$`` is the end of text).
``[A-z]`` is kept as Go has it: the ASCII range also holds ``[ \\ ] ^ _ `````."""
_RAT_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_RAT_FRACTION = re.compile(r"[+-]?\d+/\d+", re.ASCII)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
MAX_TEXT = 100
"""Longest amount we parse; more digits than any price needs, and a bound on the work a hostile input causes."""


@dataclass(frozen=True)
class Source:
    """A price as set: ``amount`` ``currency`` per ``pixels_per_unit`` units (pixels, or a pipeline's units)."""

    amount: Fraction
    currency: str = "wei"
    """``wei``, ``eth`` or ``USD`` (normalized by :func:`normalize_currency`)."""
    pixels_per_unit: int = 1

    @property
    def text(self) -> str:
        amount = _decimal_text(self.amount)
        unit = "" if self.pixels_per_unit == 1 else f" per {self.pixels_per_unit}"
        return f"{amount}{self.currency}{unit}"

    @property
    def per_unit(self) -> Fraction:
        """Amount per single unit, still in ``currency``: pricePerUnit / pixelsPerUnit."""
        return self.amount / self.pixels_per_unit


def _decimal_text(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = value * 10**places
    digits = str(scaled.numerator).rjust(places + 1, "0")
    return f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")


def normalize_currency(currency: str, where: str) -> str:
    """go-livepeer's rule: none or ``wei`` (any case) is wei, ``eth`` is 1e18 wei, anything else the feed's currency.

    The feed is ETH/USD, so that other currency can only be USD.
    """
    lower = currency.lower()
    if lower in ("", "wei"):
        return "wei"
    if lower == "eth":
        return "eth"
    if lower == "usd":
        return "USD"
    raise InvalidPrice(f"{where}: price feed does not have {currency.upper()} as a currency (ETH/USD); use wei, eth or USD")


def go_rat(text: str) -> Fraction | None:
    """Go's ``big.Rat.SetString`` for decimal input: ``a/b`` or a decimal with an optional exponent; None if not a number."""
    if len(text) > MAX_TEXT:
        return None
    if _RAT_FRACTION.fullmatch(text):
        num, den = text.split("/")
        return Fraction(int(num), int(den)) if int(den) != 0 else None
    match = _RAT_DECIMAL.fullmatch(text)
    if not match:
        return None
    if match.group(2) and abs(int(match.group(2)[1:])) > 100:
        return None  # 1e1000000 is a number to Go too, but not a price; refuse the work
    return Fraction(Decimal(text))


def parse_price_per_unit(text: str, where: str = "-pricePerUnit") -> tuple[Fraction, str]:
    """``<price><currency>``, e.g. ``1000``, ``1000wei``, ``0.0001eth``, ``0.5USD``; the currency normalized."""
    match = PRICE_PER_UNIT.fullmatch(text) if len(text) <= MAX_TEXT else None
    if match is None:
        raise InvalidPrice(f"{where}: price must be in the format of <price><currency>, e.g. 1000 or 0.5USD; provided {text!r}")
    return Fraction(Decimal(match.group(1))), normalize_currency(match.group(3) or "", where)


def parse_pixels_per_unit(text: str | int, where: str = "-pixelsPerUnit") -> int:
    """A whole number above 0 (Go: a big.Rat that IsInt and has Sign > 0); at most int64 (it goes on the wire)."""
    value = Fraction(text) if isinstance(text, int) else go_rat(text.strip())
    if value is None or value.denominator != 1:
        raise InvalidPrice(f"{where} must be a valid integer, provided {text}")
    if value <= 0:
        raise InvalidPrice(f"{where} must be > 0, provided {text}")
    if value > INT64_MAX:
        raise InvalidPrice(f"{where} must fit in 64 bits, provided {text}")
    return int(value)


def parse_gateway(address: str, where: str) -> str:
    """``default`` or a 0x address of 40 hex digits, lower-cased."""
    if address == DEFAULT_GATEWAY:
        return address
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise InvalidPrice(f"{where}: {address!r} is not an ETH address (0x and 40 hex digits) nor 'default'")
    return address.lower()


def parse_gateway_prices(value: str, where: str = "-pricePerGateway") -> dict[str, Source]:
    """``{"gateways":[{"ethaddress","priceperunit","pixelsperunit","currency"}]}`` (or ``broadcasters``), as JSON or a file.

    As go-livepeer: keys match case-insensitively, numbers must be unquoted
    JSON numbers, addresses are lower-cased; a later entry for the same
    gateway wins. Unlike go-livepeer, which logs a parse error and carries on
    with no gateway prices, a bad value stops the service.
    """
    value = value.strip()
    if not value:
        return {}
    path = Path(value)
    if not value.startswith("{") and path.is_file():
        try:
            value = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidPrice(f"{where}: cannot read {path}: {exc}") from None
        where = f"{where} ({path})"
    try:
        raw = json.loads(value, parse_float=Decimal, parse_int=int, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidPrice(f"{where}: not JSON nor a file: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidPrice(f'{where}: must be a JSON object {{"gateways": [...]}}')
    top = _fold(raw)
    entries: list[Any] = []
    for key in ("broadcasters", "gateways"):  # go-livepeer appends gateways after broadcasters
        part = top.get(key, [])
        if part is None:
            continue
        if not isinstance(part, list):
            raise InvalidPrice(f"{where}: {key} must be a JSON array")
        entries += [(key, n, e) for n, e in enumerate(part)]
    out: dict[str, Source] = {}
    for key, n, entry in entries:
        at = f"{where}: {key}[{n}]"
        if not isinstance(entry, dict):
            raise InvalidPrice(f"{at} must be a JSON object")
        fields = _fold(entry)
        address = fields.get("ethaddress")
        if not isinstance(address, str):
            raise InvalidPrice(f"{at}: ethaddress must be a string")
        gateway = parse_gateway(address, at)
        if gateway == DEFAULT_GATEWAY:
            raise InvalidPrice(f"{at}: ethaddress must be a gateway's address; the default price is -pricePerUnit")
        amount = _json_rat(fields, "priceperunit", at)
        if amount < 0:
            raise InvalidPrice(f"{at}: priceperunit must be >= 0")
        pixels = _json_rat(fields, "pixelsperunit", at)
        currency = fields.get("currency", "")
        if not isinstance(currency, str):
            raise InvalidPrice(f"{at}: currency must be a string")
        out[gateway] = Source(
            amount=amount,
            currency=normalize_currency(currency, at),
            pixels_per_unit=parse_pixels_per_unit(pixels.numerator if pixels.denominator == 1 else str(pixels),
                                                  f"{at}: pixelsperunit"),
        )
    return out


def ai_model_source(model: AIModel, base: Source | None, where: str) -> Source:
    """One ``-aiModels`` entry's price: its own ``price_per_unit`` and ``currency``, else ``-pricePerUnit``'s.

    ``pixels_per_unit`` falls back to ``-pixelsPerUnit``. As go-livepeer, a
    model without a price when ``-pricePerUnit`` is 0 (or unset) is an error.
    """
    pixels = base.pixels_per_unit if base else 1
    if model.pixels_per_unit is not None:
        ppu = model.pixels_per_unit
        if ppu.denominator != 1 or ppu <= 0 or ppu > INT64_MAX:
            raise InvalidPrice(
                f"{where}: 'pixels_per_unit' for model {model.model_id!r} in pipeline {model.pipeline!r} "
                f"must be a valid positive integer, provided {_decimal_text(ppu)}"
            )
        pixels = int(ppu)
    if model.price_per_unit is None:
        if base is None or base.amount == 0:
            raise InvalidPrice(f"{where}: 'price_per_unit' must be set for model {model.model_id!r} "
                               f"in pipeline {model.pipeline!r}")
        return Source(amount=base.amount, currency=base.currency, pixels_per_unit=pixels)
    return Source(amount=model.price_per_unit, currency=normalize_currency(model.currency, where), pixels_per_unit=pixels)


def _fold(obj: dict[str, Any]) -> dict[str, Any]:
    """Go's encoding/json matches keys case-insensitively (the last one wins)."""
    return {str(k).lower(): v for k, v in obj.items()}


def _json_rat(fields: dict[str, Any], key: str, where: str) -> Fraction:
    raw = fields.get(key)
    if raw is None:
        raise InvalidPrice(f"{where}: {key} is required")
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal):
        raise InvalidPrice(f"{where}: {key} must be a JSON number (unquoted), provided {json.dumps(raw, default=str)}")
    if isinstance(raw, Decimal) and not raw.is_finite():
        raise InvalidPrice(f"{where}: {key} is not a finite number")
    if isinstance(raw, Decimal) and abs(raw.as_tuple().exponent) > 100:  # type: ignore[arg-type]
        raise InvalidPrice(f"{where}: {key} has too many digits")
    return Fraction(raw)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
