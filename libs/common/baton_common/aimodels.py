"""go-livepeer's ``-aiModels`` setting: the AI models an orchestrator serves and prices.

Spec/livepeer-wire.md section 6. The value is either a path to a JSON file
holding an array of entries, or an inline list ``pipeline:model_id:warm,...``
(go-livepeer takes a path when the file exists; inline JSON is not accepted).
Entry keys: ``pipeline``, ``model_id``, ``warm``, ``capacity``, ``url``,
``token``, ``optimization_flags``, ``price_per_unit``, ``pixels_per_unit``,
``currency``, ``gateway``. Prices are JSON numbers read exactly, as rationals.

Inference reads the models to serve, pricing the prices, from the same
setting (``CommonSettings.ai_models``), so an operator's existing file works
for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from .capabilities import pipeline_by_name
from .errors import ConfigError

__all__ = ["SETTING", "AIModel", "parse_ai_models"]

SETTING = "-aiModels (BATON_AI_MODELS)"

_KEYS = {
    "pipeline",
    "model_id",
    "warm",
    "capacity",
    "url",
    "token",
    "optimization_flags",
    "price_per_unit",
    "pixels_per_unit",
    "currency",
    "gateway",
}


@dataclass(frozen=True)
class AIModel:
    """One ``-aiModels`` entry."""

    pipeline: str
    model_id: str
    warm: bool = False
    capacity: int = 1
    """Concurrent jobs the model takes (go-livepeer: containers, or the advertised capacity with ``url``)."""
    url: str = ""
    """An external runner; Baton serves the model itself when empty."""
    token: str = field(default="", repr=False)
    """The external runner's bearer token: a secret, never printed."""
    optimization_flags: dict[str, str | bool] = field(default_factory=dict)
    price_per_unit: Fraction | None = None
    """Wei (or ``currency``) per ``pixels_per_unit`` units; None falls back to ``-pricePerUnit``."""
    pixels_per_unit: Fraction | None = None
    currency: str = ""
    gateway: str = "default"
    """The gateway address (lower-case hex) this price is for, or ``default``."""

    @property
    def capability(self) -> int:
        return pipeline_by_name(self.pipeline).capability


def parse_ai_models(value: str, *, setting: str = SETTING) -> list[AIModel]:
    """The entries of an ``-aiModels`` value (a file path or an inline list); ConfigError naming ``setting``."""
    value = value.strip()
    if not value:
        return []
    path = Path(value)
    if path.is_file():
        try:
            raw = json.loads(path.read_text(), parse_float=Decimal, parse_int=int)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{setting}: cannot read {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{setting}: {path} is not JSON: {exc.msg} at line {exc.lineno}") from exc
        if not isinstance(raw, list):
            raise ConfigError(f"{setting}: {path} must hold a JSON array of model entries")
        models = [_entry(item, f"{setting}: {path} entry {n}") for n, item in enumerate(raw, start=1)]
    elif value[0] in "[{":
        raise ConfigError(f"{setting}: inline JSON is not accepted (as in go-livepeer); put it in a file and name the file")
    elif value.endswith(".json"):
        raise ConfigError(f"{setting}: file {value} does not exist")
    else:
        models = [_inline(part.strip(), setting) for part in value.split(",") if part.strip()]
    _check_unique(models, setting)
    return models


def _inline(part: str, setting: str) -> AIModel:
    fields = part.split(":")
    if len(fields) not in (2, 3) or not all(fields[:2]):
        raise ConfigError(f"{setting}: {part!r} is not pipeline:model_id[:warm]")
    warm = False
    if len(fields) == 3:
        if fields[2].lower() not in ("true", "false"):
            raise ConfigError(f"{setting}: warm must be true or false in {part!r}")
        warm = fields[2].lower() == "true"
    return _model(fields[0], fields[1], setting=f"{setting}: {part!r}", warm=warm)


def _entry(item: Any, where: str) -> AIModel:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    for key in ("pipeline", "model_id"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    warm = item.get("warm", False)
    if not isinstance(warm, bool):
        raise ConfigError(f"{where}: warm must be true or false")
    capacity = item.get("capacity", 1)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ConfigError(f"{where}: capacity must be a whole number of at least 1")
    strings = {}
    for key in ("url", "token", "currency", "gateway"):
        if key in item and not isinstance(item[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
        if key in item:
            strings[key] = item[key]
    flags = item.get("optimization_flags", {})
    if not isinstance(flags, dict) or not all(isinstance(v, str | bool) for v in flags.values()):
        raise ConfigError(f"{where}: optimization_flags must map names to strings or true/false")
    gateway = strings.pop("gateway", "default")
    if gateway != "default":
        gateway = _gateway(gateway, where)
    return _model(
        item["pipeline"],
        item["model_id"],
        setting=where,
        warm=warm,
        capacity=capacity,
        optimization_flags=dict(flags),
        price_per_unit=_rational(item, "price_per_unit", where, positive=False),
        pixels_per_unit=_rational(item, "pixels_per_unit", where, positive=True),
        gateway=gateway,
        **strings,
    )


def _model(pipeline: str, model_id: str, *, setting: str, **fields: Any) -> AIModel:
    try:
        pipeline_by_name(pipeline)
    except KeyError as exc:
        raise ConfigError(f"{setting}: {exc.args[0]}") from None
    return AIModel(pipeline=pipeline, model_id=model_id, **fields)


def _rational(item: dict, key: str, where: str, *, positive: bool) -> Fraction | None:
    if key not in item:
        return None
    raw = item[key]
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal):
        raise ConfigError(f"{where}: {key} must be a JSON number (unquoted)")
    try:
        value = Fraction(raw)
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: {key} is not a finite number") from exc
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where}: {key} must be {'above' if positive else 'at least'} 0")
    return value


def _gateway(address: str, where: str) -> str:
    plain = address.lower().removeprefix("0x")
    if len(plain) != 40 or any(c not in "0123456789abcdef" for c in plain):
        raise ConfigError(f"{where}: gateway must be an ETH address (0x and 40 hex digits) or 'default'")
    return "0x" + plain


def _check_unique(models: list[AIModel], setting: str) -> None:
    seen: dict[tuple[str, str], bool] = {}
    gateways: set[tuple[str, str, str]] = set()
    for model in models:
        key = (model.pipeline, model.model_id)
        if key in seen and seen[key] != model.warm:
            raise ConfigError(f"{setting}: {model.pipeline} {model.model_id} is listed both warm and cold")
        seen[key] = model.warm
        priced = (model.pipeline, model.model_id, model.gateway)
        if priced in gateways:
            raise ConfigError(f"{setting}: {model.pipeline} {model.model_id} is listed twice for gateway {model.gateway}")
        gateways.add(priced)
