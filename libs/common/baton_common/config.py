"""Settings: one frozen Struct per service, loaded once at start.

Sources, later ones winning: the field defaults, a config file, environment
variables, command-line flags.

- Environment: ``BATON_<NAME>`` for the settings every service shares
  (:class:`CommonSettings`), ``BATON_<SERVICE>_<NAME>`` for one service's own
  (a shared setting may also be given there, for that service only).
  An unknown name under the service's own prefix is an error.
- Config file (``BATON_CONFIG`` or ``--config``): TOML, with shared settings at
  the top and each service's own in a ``[<service>]`` table; or go-livepeer's
  plain ``-config`` format (``flagName value`` per line). Keys may be Baton's
  field names or go-livepeer's flag names (``pricePerUnit``, ``ethUrl``...).
- Flags: go-livepeer's names with its value format (``-pricePerUnit=1000``,
  ``-reward``), or ``--field-name value`` for Baton's own.

A bad value or an unknown name raises :class:`ConfigError` naming its source,
and the service stops before doing anything.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

import msgspec

from .errors import ConfigError
from .golivepeer import GO_LIVEPEER_FLAGS

__all__ = [
    "SERVICES",
    "CommonSettings",
    "ConfigError",
    "field_extra",
    "field_type",
    "go_duration",
    "load_settings",
    "redacted",
    "setting",
]

SERVICES = ("negotiator", "pricing", "chain", "inference", "transcode", "monitor")

S = TypeVar("S", bound="CommonSettings")


def setting(description: str, *, flag: str | None = None, secret: bool = False, duration: bool = False,
            **constraints: Any) -> msgspec.Meta:
    """Field metadata: its documentation, go-livepeer's flag name for it, and constraints.

    ``duration``: a float of seconds that also takes a Go duration string (``5m``, ``1m30s``), as go-livepeer's
    ``time.Duration`` flags do.
    """
    extra: dict[str, Any] = {}
    if flag:
        extra["flag"] = flag
    if secret:
        extra["secret"] = True
    if duration:
        extra["duration"] = True
    return msgspec.Meta(description=description, extra=extra, **constraints)


class CommonSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings every service shares (environment ``BATON_<NAME>``)."""

    nats_url: Annotated[
        str, setting("NATS server URLs, comma-separated; the client retries them forever.")
    ] = "nats://127.0.0.1:4222"
    instance_id: Annotated[
        str, setting("Name of this instance in heartbeats and metrics; empty means the host name.")
    ] = ""
    http_host: Annotated[str, setting("Address of the health and metrics HTTP server.")] = "0.0.0.0"
    http_port: Annotated[
        int, setting("Port of the health and metrics HTTP server (/healthz, /readyz, /metrics).", ge=0, le=65535)
    ] = 0
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], setting("Lowest level of log lines written.")
    ] = "info"
    log_format: Annotated[
        Literal["json", "text"], setting("`json`: one JSON object per line; `text`: for humans.")
    ] = "json"
    otlp_endpoint: Annotated[
        str, setting("OTLP/HTTP endpoint for traces, e.g. http://tempo:4318/v1/traces; empty turns tracing off.")
    ] = ""
    network: Annotated[
        str, setting("Ethereum network, as go-livepeer's -network; `offchain` needs no Ethereum node.", flag="network")
    ] = "offchain"
    ai_models: Annotated[
        str,
        setting(
            "AI models to serve and price, as go-livepeer's -aiModels: a JSON file of entries, or an inline "
            "`pipeline:model_id:warm,...` list (read by inference and pricing; see baton_common.aimodels).",
            flag="aiModels",
        ),
    ] = ""
    ai_models_dir: Annotated[
        str,
        setting(
            "Local weights directory (go-livepeer's -aiModelsDir), in the Hugging Face hub cache layout "
            "or plain save_pretrained folders.",
            flag="aiModelsDir",
        ),
    ] = ""

    @property
    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]

    def __post_init__(self) -> None:
        servers = self.nats_servers
        if not servers:
            raise ValueError("BATON_NATS_URL is empty: name at least one NATS server (nats://host:4222)")
        for url in servers:
            _check_nats_url(url)


def load_settings(
    cls: type[S],
    service: str,
    *,
    env: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
) -> S:
    """Load ``cls`` for ``service`` from file, environment and flags.

    Raises :class:`ConfigError` naming the first bad or unknown setting.
    """
    env = os.environ if env is None else env
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    common = {f.name for f in msgspec.structs.fields(CommonSettings)}
    by_flag = {_flag(f): f.name for f in fields.values() if _flag(f)}

    values: dict[str, tuple[Any, str]] = {}  # field -> (raw value, where it came from)
    flags, config_path = _parse_argv(list(argv or []), fields, by_flag)
    config_path = config_path or env.get("BATON_CONFIG") or None
    if config_path:
        values.update(_read_file(Path(config_path), service, fields, common, by_flag))

    prefix = f"BATON_{service.upper()}_"
    for key, raw in env.items():
        if key.startswith(prefix):
            name = key[len(prefix):].lower()
            if name not in fields:
                raise ConfigError(f"{service}: unknown setting {key} (known: {_known(fields, prefix)})")
            values[name] = (raw, key)
        elif key.startswith("BATON_") and key[6:].lower() in common:
            name = key[6:].lower()
            if not (name in values and values[name][1].startswith(prefix)):
                values[name] = (raw, key)
        elif key.startswith("BATON_") and not _is_other_services(key) and key not in OTHER_BATON_VARIABLES:
            raise ConfigError(f"{service}: unknown setting {key}: not a shared setting nor under a service's prefix")
    values.update(flags)

    converted = {name: _convert(fields[name], raw, source, service) for name, (raw, source) in values.items()}
    try:
        return msgspec.convert(converted, cls)
    except msgspec.ValidationError as exc:  # a cross-field check in __post_init__
        raise ConfigError(f"{service}: {exc}") from None


def redacted(settings: msgspec.Struct) -> dict[str, Any]:
    """The settings as a dict, with every secret field masked (safe to log)."""
    out = msgspec.to_builtins(settings)
    for f in msgspec.structs.fields(type(settings)):
        if field_extra(f).get("secret") and out.get(f.name):
            out[f.name] = "***"
    return out


# -- helpers ---------------------------------------------------------------

NATS_SCHEMES = ("nats", "tls", "ws", "wss")
OTHER_BATON_VARIABLES = frozenset({"BATON_CONFIG", "BATON_IMAGE", "BATON_MODEL_REPOSITORY", "BATON_UPDATE_SNAPSHOTS"})
"""BATON_* names that are not settings: the config file path, compose-only and test-only variables."""


def _check_nats_url(url: str) -> None:
    parsed = urlsplit(url if "://" in url else f"nats://{url}")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise ValueError(f"BATON_NATS_URL: bad port in {url!r}") from None
    if parsed.scheme not in NATS_SCHEMES or not parsed.hostname:
        raise ValueError(f"BATON_NATS_URL: {url!r} is not a NATS URL (nats://host:port)")



def field_extra(f: msgspec.structs.FieldInfo) -> dict[str, Any]:
    """The ``extra`` of a field's :func:`setting` (its go-livepeer ``flag``, whether it is ``secret``)."""
    for arg in get_args(f.type)[1:] if get_origin(f.type) is Annotated else ():
        if isinstance(arg, msgspec.Meta) and arg.extra:
            return dict(arg.extra)
    return {}


def _flag(f: msgspec.structs.FieldInfo) -> str | None:
    return field_extra(f).get("flag")


def field_type(f: msgspec.structs.FieldInfo) -> Any:
    """A field's type without its Annotated metadata."""
    return get_args(f.type)[0] if get_origin(f.type) is Annotated else f.type


def _is_other_services(key: str) -> bool:
    return any(key.startswith(f"BATON_{name.upper()}_") for name in SERVICES)


def _known(fields: Mapping[str, Any], prefix: str) -> str:
    own = [prefix + n.upper() for n in fields if n not in CommonSettings.__struct_fields__]
    return ", ".join(own) or "none"


def _parse_argv(
    argv: list[str], fields: Mapping[str, Any], by_flag: Mapping[str, str]
) -> tuple[dict[str, tuple[Any, str]], str | None]:
    """Go-style flags: ``-name value``, ``-name=value``, ``--name``; bool flags take ``=value`` only."""
    out: dict[str, tuple[Any, str]] = {}
    config: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"unexpected argument {arg!r}: settings are given as -flag=value")
        key, eq, value = arg.lstrip("-").partition("=")
        name = by_flag.get(key) or key.replace("-", "_")
        if key == "config":
            name = "config"
        elif name not in fields:
            raise ConfigError(f"unknown flag -{key}")
        is_bool = name != "config" and _is_bool(field_type(fields[name]))
        if not eq:
            if is_bool:
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise ConfigError(f"flag -{key} needs a value")
        if name == "config":
            config = value
        else:
            out[name] = (value, f"flag -{key}")
    return out, config


def _read_file(
    path: Path, service: str, fields: Mapping[str, Any], common: set[str], by_flag: Mapping[str, str]
) -> dict[str, tuple[Any, str]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        own = data.pop(service, {})
        if not isinstance(own, dict):
            raise ConfigError(f"config file {path}: [{service}] must be a table")
        top = {k: v for k, v in data.items() if k not in SERVICES}
    else:  # go-livepeer's plain format: `flagName value` per line, `#` comments
        own, top = {}, {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.lstrip("-").partition(" ")
            key, eq, inline = key.partition("=")
            top[key] = inline if eq else (value.strip() or "true")
    out: dict[str, tuple[Any, str]] = {}
    for scope, table in (("top", top), (service, own)):
        for key, value in table.items():
            name = by_flag.get(key, key)
            where = f"{path}: {key}" if scope == "top" else f"{path}: [{service}] {key}"
            if name in fields and (scope == service or name in common or key in by_flag):
                out[name] = (value, where)
            elif scope == "top" and key in GO_LIVEPEER_FLAGS:
                continue  # another service's go-livepeer flag, or one Baton does not need
            else:
                raise ConfigError(f"{service}: unknown setting {where}")
    return out


def _convert(f: msgspec.structs.FieldInfo, raw: Any, source: str, service: str) -> Any:
    base = field_type(f)
    value = raw
    if isinstance(raw, str):
        if field_extra(f).get("duration"):
            value = go_duration(raw)
            if value is None:
                raise ConfigError(f"{service}: bad value {raw!r} for {source}: expected a Go duration such as "
                                  "5m, 300s or 1m30s (or a number of seconds)")
        elif _is_bool(base):
            value = None if raw == "" and base is not bool else _go_bool(raw)  # empty: unset, where it may be
        elif get_origin(base) in (list, tuple):
            value = [v.strip() for v in raw.split(",") if v.strip()]
        elif get_origin(base) is dict:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
    try:
        return msgspec.convert(value, f.type, strict=False)
    except msgspec.ValidationError as exc:
        shown = "***" if field_extra(f).get("secret") else repr(raw)
        reason = str(exc).split(" - at ")[0]
        raise ConfigError(f"{service}: bad value {shown} for {source}: {reason}") from None


def _is_bool(tp: Any) -> bool:
    """bool, or ``bool | None`` (a go-livepeer bool flag whose absence means something of its own)."""
    return tp is bool or (get_origin(tp) in (Union, UnionType) and set(get_args(tp)) == {bool, type(None)})


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float | None:
    """Seconds in Go's ``time.ParseDuration`` format (``300ms``, ``5m``, ``1h2m3.5s``), or a plain number of
    seconds; None if it is neither."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body:
        return None
    total, at = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != at:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        at = match.end()
    return sign * total if at == len(body) else None


def _go_bool(raw: str) -> Any:
    """Go's strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False."""
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return raw
