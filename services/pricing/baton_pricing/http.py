"""The admin API: read and change prices live, per gateway and per capability; OpenAPI at /schema.

Its own litestar app on its own listener (``BATON_PRICING_ADMIN_ADDR``), apart
from the runtime's health server. Every route needs ``Authorization: Bearer
<token>`` from the tokens file; changes need the ``admin`` role. Each change
is audited with the token's holder; a request that is refused changes nothing.
go-livepeer's ``/setPriceForBroadcaster`` and ``/setOrchestratorConfig`` take
their form fields as go-livepeer's CLI server does (body or query string).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post, put
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import Body, Parameter

from baton_common.capabilities import pipeline_by_capability, pipeline_by_name
from baton_common.schemas.audit import AuditEvent
from baton_common.schemas.pricing import DEFAULT_GATEWAY

from .book import PriceBook, source_json
from .domain import BASE, RuleKey, wei_per_unit
from .errors import InvalidPrice, NoRate, PricingError
from .inputs import Source, go_rat, normalize_currency, parse_gateway
from .tokens import Holder, Tokens

__all__ = ["build_admin_app"]

GO_LIVEPEER_PATHS = ("/setPriceForBroadcaster", "/setOrchestratorConfig")
"""go-livepeer's CLI endpoints answer errors in plain text (http.Error), so Baton's do too."""
MAX_AMOUNT = 80
_AMOUNT = re.compile(r"\d+(\.\d+)?", re.ASCII)
_MODEL_ID = re.compile(r"[\x21-\x7e]+", re.ASCII)


class PriceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: Annotated[str, msgspec.Meta(max_length=MAX_AMOUNT, description="A decimal, e.g. `1000` or `0.5`.")]
    currency: Annotated[str, msgspec.Meta(max_length=8, description="`wei`, `eth` or `USD`.")] = "wei"
    pixels_per_unit: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] = 1


class SetPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, description="Why; the audit log keeps it.")]
    gateway: Annotated[str, msgspec.Meta(max_length=42, description="`default` or a gateway's 0x address.")] = "default"
    pipeline: Annotated[str, msgspec.Meta(max_length=40, description="Empty: the transcoding price per pixel.")] = ""
    model_id: Annotated[str, msgspec.Meta(max_length=256)] = ""
    price: PriceIn | None = None
    floor: PriceIn | None = None
    ceiling: PriceIn | None = None
    clear: Annotated[list[Literal["price", "floor", "ceiling"]], msgspec.Meta(max_length=3)] = []
    """What to remove from the rule (a gateway's own price, a bound)."""


class ResetPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    gateway: Annotated[str, msgspec.Meta(max_length=42)] = "default"
    pipeline: Annotated[str, msgspec.Meta(max_length=40)] = ""
    model_id: Annotated[str, msgspec.Meta(max_length=256)] = ""


class PriceOut(msgspec.Struct, frozen=True, kw_only=True):
    price: str
    amount: str
    currency: str
    pixels_per_unit: int
    wei_per_unit: str | None
    """Exact, as `num/den`; null while a USD price waits for the rate."""


class RuleOut(msgspec.Struct, frozen=True, kw_only=True):
    gateway: str
    pipeline: str
    model_id: str
    source: Literal["config", "api"]
    price: PriceOut | None
    floor: PriceOut | None
    ceiling: PriceOut | None


class PricesOut(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    published_at: float
    currency: str
    eth_usd: float
    eth_usd_updated_at: float
    eth_usd_stale: bool
    rules: list[RuleOut]


class ChangeOut(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    target: str
    version: int
    old: dict[str, Any]
    new: dict[str, Any]


class ErrorOut(msgspec.Struct, frozen=True, kw_only=True):
    error: str
    message: str


@dataclass
class GoPriceForm:
    """go-livepeer's /setPriceForBroadcaster form."""

    pricePerUnit: str = ""  # noqa: N815 - go-livepeer's field names
    pixelsPerUnit: str = ""  # noqa: N815
    currency: str = ""
    broadcasterEthAddr: str = ""  # noqa: N815


@dataclass
class GoConfigForm:
    """go-livepeer's /setOrchestratorConfig form; the on-chain fields are not pricing's."""

    pricePerUnit: str = ""  # noqa: N815
    pixelsPerUnit: str = ""  # noqa: N815
    currency: str = ""
    blockRewardCut: str = ""  # noqa: N815
    feeShare: str = ""  # noqa: N815
    serviceURI: str = ""  # noqa: N815


def build_admin_app(book: PriceBook, tokens: Tokens) -> Litestar:
    def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Holder:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("an Authorization: Bearer <token> header is required")
        holder = tokens.holder(token.strip())
        if holder is None:
            raise NotAuthorizedException("unknown token" if tokens.holders else
                                         "no tokens are configured (BATON_PRICING_ADMIN_TOKENS_FILE)")
        connection.state.holder = holder
        return holder

    def reader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        authenticate(connection)

    def admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if authenticate(connection).role != "admin":
            raise PermissionDeniedException("this token is read-only; changing prices needs an admin token")

    @get("/prices", guards=[reader], sync_to_thread=False)
    def show() -> PricesOut:
        """The rules in force (configured, or changed through this API) and their wei per unit."""
        return _prices(book)

    @put("/prices", guards=[admin], status_code=200)
    async def set_price(request: Request[Any, Any, Any], data: SetPrice) -> ChangeOut:
        """Set the price, floor or ceiling of one gateway (or `default`) for transcoding or one pipeline and model."""
        key = _key(data.gateway, data.pipeline, data.model_id)
        changes = {name: _source(getattr(data, name), name) for name in ("price", "floor", "ceiling")
                   if getattr(data, name) is not None}
        for name in data.clear:
            if name in changes:
                raise InvalidPrice(f"{name} is both set and cleared")
            changes[name] = None
        if not changes:
            raise InvalidPrice("nothing to change: give price, floor, ceiling or clear")
        return _change(book, await book.update(key, changes, actor=request.state.holder.name, reason=data.reason))

    @post("/prices/reset", guards=[admin], status_code=200)
    async def reset_price(request: Request[Any, Any, Any], data: ResetPrice) -> ChangeOut:
        """Undo this API's changes to one rule: the configured price and bounds apply again."""
        key = _key(data.gateway, data.pipeline, data.model_id)
        return _change(book, await book.reset(key, actor=request.state.holder.name, reason=data.reason))

    @get("/prices/history", guards=[reader])
    async def history(
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        since: Annotated[float, Parameter(ge=0, le=1e11, description="Unix time; default 366 days ago.")] | None = None,
    ) -> list[AuditEvent]:
        """The last price changes from the audit log (BATON_AUDIT), oldest first."""
        if since is not None and not (math.isfinite(since) and 0 <= since <= 1e11):  # Parameter's bounds skip NaN
            raise ValidationException(f"since must be a Unix time between 0 and 1e11, got {since!r}")
        start = since if since is not None else time.time() - 366 * 86400
        return await book.store.history(limit=limit, since=start)

    @post("/setPriceForBroadcaster", guards=[admin], status_code=200, media_type=MediaType.TEXT)
    async def set_price_for_broadcaster(
        request: Request[Any, Any, Any],
        data: Annotated[GoPriceForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> str:
        """go-livepeer's endpoint: pricePerUnit, pixelsPerUnit, currency, broadcasterEthAddr (a gateway or `default`)."""
        form = _merge_query(request, data)
        gateway = form.broadcasterEthAddr
        if gateway != DEFAULT_GATEWAY and not re.fullmatch(r"0x[0-9a-fA-F]{40}", gateway, re.ASCII):
            raise InvalidPrice(f"broadcasterEthAddr is not a valid eth address, provided {gateway}")
        source = _go_source(form.pricePerUnit, form.pixelsPerUnit, form.currency)
        reason = request.headers.get("x-baton-reason", "") or "go-livepeer /setPriceForBroadcaster"
        await book.update((gateway.lower(), None, ""), {"price": source}, actor=request.state.holder.name,
                          reason=reason[:500])
        return (f"Price per pixel set to {form.pricePerUnit} wei for {form.pixelsPerUnit} pixels for broadcaster "
                f"{gateway}\n")

    @post("/setOrchestratorConfig", guards=[admin], status_code=200, media_type=MediaType.TEXT)
    async def set_orchestrator_config(
        request: Request[Any, Any, Any],
        data: Annotated[GoConfigForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> str:
        """go-livepeer's endpoint: the default price (pricePerUnit, pixelsPerUnit, currency); the on-chain fields
        (blockRewardCut, feeShare, serviceURI) are refused here, changing nothing."""
        form = _merge_query(request, data)
        chain = [name for name in ("blockRewardCut", "feeShare", "serviceURI") if getattr(form, name)]
        if chain:
            raise InvalidPrice(f"{', '.join(chain)}: on-chain settings are not changed by pricing; nothing was changed")
        if not (form.pricePerUnit and form.pixelsPerUnit):
            return ""  # go-livepeer does nothing either, and answers 200
        source = _go_source(form.pricePerUnit, form.pixelsPerUnit, form.currency)
        reason = request.headers.get("x-baton-reason", "") or "go-livepeer /setOrchestratorConfig"
        await book.update(BASE, {"price": source}, actor=request.state.holder.name, reason=reason[:500])
        return ""

    def on_error(request: Request[Any, Any, Any], exc: PricingError) -> Response[Any]:
        if request.url.path in GO_LIVEPEER_PATHS:
            return Response(exc.message + "\n", status_code=exc.status_code, media_type=MediaType.TEXT)
        return Response(ErrorOut(error=exc.code, message=exc.message), status_code=exc.status_code)

    def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        detail = exc.detail
        extra = exc.extra if isinstance(exc.extra, list | dict) and exc.extra else None
        message = detail if extra is None else f"{detail}: {msgspec.json.encode(extra).decode()}"
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
        headers: dict[str, str] = {}
        if exc.status_code in (401, 403):
            # Refused before the body was read: hypercorn cannot reuse this connection, so say so
            # (a keep-alive client would otherwise send its next request into a closing socket).
            headers["Connection"] = "close"
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if request.url.path in GO_LIVEPEER_PATHS:
            return Response(message + "\n", status_code=exc.status_code, media_type=MediaType.TEXT, headers=headers)
        return Response(ErrorOut(error=code, message=message), status_code=exc.status_code, headers=headers)

    return Litestar(
        route_handlers=[show, set_price, reset_price, history, set_price_for_broadcaster, set_orchestrator_config],
        exception_handlers={PricingError: on_error, HTTPException: on_http_error},
        openapi_config=OpenAPIConfig(
            title="Baton pricing admin API",
            version="1",
            path="/schema",
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        logging_config=None,
        debug=False,
    )


def _key(gateway: str, pipeline: str, model_id: str) -> RuleKey:
    gateway = parse_gateway(gateway, "gateway")
    if not pipeline:
        if model_id:
            raise InvalidPrice("model_id needs a pipeline")
        return (gateway, None, "")
    try:
        capability = pipeline_by_name(pipeline).capability
    except KeyError as exc:
        raise InvalidPrice(exc.args[0]) from None
    if not _MODEL_ID.fullmatch(model_id):
        raise InvalidPrice("a pipeline's price needs its model_id (printable, no spaces)")
    return (gateway, capability, model_id)


def _source(given: PriceIn, what: str) -> Source:
    if not _AMOUNT.fullmatch(given.amount):
        raise InvalidPrice(f"{what}.amount must be a decimal such as 1000 or 0.5; provided {given.amount!r}")
    amount = go_rat(given.amount)
    assert amount is not None
    return Source(amount=amount, currency=normalize_currency(given.currency, f"{what}.currency"),
                  pixels_per_unit=given.pixels_per_unit)


def _go_source(price: str, pixels: str, currency: str) -> Source:
    """go-livepeer's setOrchestratorPriceInfo: big.Rat price >= 0, pixels > 0 (Baton: a whole number)."""
    amount = go_rat(price.strip())
    if amount is None:
        raise InvalidPrice(f"error parsing pricePerUnit value: {price}")
    if amount < 0:
        raise InvalidPrice(f"price unit must be greater than or equal to 0, provided {price}")
    count = go_rat(pixels.strip())
    if count is None:
        raise InvalidPrice(f"error parsing pixelsPerUnit value: {pixels}")
    if count <= 0:
        raise InvalidPrice(f"pixels per unit must be greater than 0, provided {pixels}")
    if count.denominator != 1 or count > 2**63 - 1:
        raise InvalidPrice(f"pixels per unit must be a whole number that fits in 64 bits, provided {pixels}")
    return Source(amount=amount, currency=normalize_currency(currency, "currency"), pixels_per_unit=int(count))


def _merge_query(request: Request[Any, Any, Any], form: Any) -> Any:
    """Go's FormValue: a body field wins, else the query string's."""
    for name in (f.name for f in dataclasses.fields(form)):
        if not getattr(form, name, ""):
            value = request.query_params.get(name)
            if isinstance(value, str):
                setattr(form, name, value)
    return form


def _prices(book: PriceBook) -> PricesOut:
    pricer = book.pricer
    table = book.table
    rate = pricer.rate

    def out(source: Source | None) -> PriceOut | None:
        shown = source_json(source)
        if shown is None or source is None:
            return None
        try:
            value = wei_per_unit(source, rate)
            wei = f"{value.numerator}/{value.denominator}"
        except NoRate:
            wei = None
        return PriceOut(wei_per_unit=wei, **shown)

    rules = []
    for key, rule in sorted(pricer.rules().items(), key=lambda kv: (kv[0][1] is not None, kv[0][1] or 0, kv[0][2], kv[0][0])):
        gateway, capability, model = key
        pipeline = pipeline_by_capability(capability) if capability is not None else None
        rules.append(RuleOut(gateway=gateway, pipeline=pipeline.name if pipeline else "", model_id=model,
                             source="api" if key in pricer.overrides else "config",
                             price=out(rule.price), floor=out(rule.floor), ceiling=out(rule.ceiling)))
    return PricesOut(
        version=table.version if table else 0,
        published_at=table.at if table else 0.0,
        currency=table.currency if table else "",
        eth_usd=float(rate.value) if rate else 0.0,
        eth_usd_updated_at=rate.updated_at if rate else 0.0,
        eth_usd_stale=pricer.rate_stale,
        rules=rules,
    )


def _change(book: PriceBook, event: AuditEvent) -> ChangeOut:
    return ChangeOut(event_id=event.event_id, target=event.target, version=book.table.version if book.table else 0,
                     old=event.old, new=event.new)

