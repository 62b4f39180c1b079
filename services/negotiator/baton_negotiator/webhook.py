"""go-livepeer's ``-authWebhookUrl`` for GetOrchestrator (spec section 1, GetOrchestrator step 2).

Each GetOrchestrator POSTs ``{"id": "<gateway address, EIP-55>"}`` to the
webhook; any answer but 200 refuses the request with ``authentication failed:
<the answer's body>``. A 200 answer may carry ``priceInfo{pricePerUnit,
pixelsPerUnit}``: that gateway's base price for requests without capabilities,
kept for 30 minutes (the auth token's life), as go-livepeer's cache.

go-livepeer POSTs on every GetOrchestrator; Baton keeps a 200 answer for
``cache_ttl`` seconds (``auth_webhook_cache_ttl``) per gateway address and asks
once for concurrent requests of one address, so a flood of GetOrchestrator
cannot exhaust the webhook client's connections for the gateways that follow. A
webhook that does not answer in time refuses with ``authentication failed: the
auth webhook did not answer in time``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from fractions import Fraction

import grpc
import httpx
import msgspec

from baton_common.metrics import Outcome

from .errors import NegotiatorError

__all__ = ["AuthWebhook", "AuthenticationFailed"]

WEBHOOK_TIMEOUT = 5.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_CACHED = 100_000


class AuthenticationFailed(NegotiatorError):
    code = "auth_webhook"
    status_code = 403
    outcome = Outcome.CLIENT_ERROR
    grpc_status = grpc.StatusCode.UNKNOWN  # go-livepeer returns a plain error: gRPC's Unknown


class _Price(msgspec.Struct):
    pricePerUnit: int = 0  # noqa: N815 - go-livepeer's JSON names
    pixelsPerUnit: int = 0  # noqa: N815


class _Answer(msgspec.Struct):
    priceInfo: _Price | None = None  # noqa: N815


class AuthWebhook:
    def __init__(self, url: str, *, ttl: float, cache_ttl: float = 10.0, client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._ttl = ttl
        self._cache_ttl = cache_ttl
        self._client = client or httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, follow_redirects=False)
        self._clock = clock
        self._prices: dict[str, tuple[Fraction, float]] = {}
        self._accepted: dict[str, float] = {}
        """Gateway address (lower case) -> until when its last 200 answer stands."""
        self._inflight: dict[str, asyncio.Future[None]] = {}

    async def authenticate(self, address: str) -> None:
        """Ask the webhook about ``address`` (or use its 200 of the last ``cache_ttl`` s); AuthenticationFailed
        unless it answers 200."""
        key = address.lower()
        if self._accepted.get(key, 0.0) > self._clock():
            return
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(address))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        await asyncio.shield(pending)

    async def _ask(self, address: str) -> None:
        try:
            r = await self._client.post(self._url, json={"id": address})
            body = r.content[:MAX_ANSWER_BYTES]
        except httpx.TimeoutException:
            raise AuthenticationFailed("authentication failed: the auth webhook did not answer in time") from None
        except httpx.HTTPError as exc:
            raise AuthenticationFailed(f"authentication failed: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise AuthenticationFailed(f"authentication failed: {body.decode('utf-8', 'replace').strip()}")
        try:
            answer = msgspec.json.decode(body or b"{}", type=_Answer)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise AuthenticationFailed("authentication failed: the webhook's answer is not JSON") from None
        price = answer.priceInfo
        if price is not None and price.pixelsPerUnit > 0 and price.pricePerUnit >= 0:
            self._prices[address.lower()] = (Fraction(price.pricePerUnit, price.pixelsPerUnit),
                                             self._clock() + self._ttl)
        else:
            self._prices.pop(address.lower(), None)
        if len(self._prices) > 100_000:  # a bound: the oldest half goes
            for key in sorted(self._prices, key=lambda k: self._prices[k][1])[:50_000]:
                del self._prices[key]
        if self._cache_ttl > 0:
            now = self._clock()
            if len(self._accepted) >= MAX_CACHED:
                self._accepted = {k: t for k, t in self._accepted.items() if t > now}
                if len(self._accepted) >= MAX_CACHED:
                    self._accepted.clear()
            self._accepted[address.lower()] = now + self._cache_ttl

    def price_for(self, address: str) -> Fraction | None:
        """The base price the webhook gave this gateway, while it lasts."""
        entry = self._prices.get(address.lower())
        if entry is None or entry[1] < self._clock():
            return None
        return entry[0]

    async def close(self) -> None:
        await self._client.aclose()
