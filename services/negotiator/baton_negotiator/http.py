"""The HTTP job endpoints as a plain ASGI app: /segment, the AI pipelines, /payment, /refresh-payment, /stream.

Errors are plain text (message + newline) with go-livepeer's status codes, as
``http.Error`` writes them. Every request is counted in ``baton_requests_total``
and every refusal in ``baton_negotiator_refusals_total``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from Crypto.Hash import keccak

from baton_common.capabilities import PIPELINES
from baton_common.metrics import Outcome
from baton_common.pm import checksum_address
from baton_common.schemas import ai

from . import metrics
from .clients import CLIENT, client_key
from .errors import BadInput, BodyTooLarge, InsufficientCapacity, NegotiatorError, NotFound, refusal_of
from .jobs import Jobs
from .media import AudioDuration, audio_duration, image_size, parse_form_async
from .orchestrator import requested_pairs
from .segfetch import MAX_SEGMENT_BYTES, fetch_segment

__all__ = ["BodyBudget", "HttpApp", "MAX_JSON_BYTES"]

log = logging.getLogger("baton.negotiator")
DRAIN_MAX = 1024 * 1024
"""Body bytes read and dropped before a refusal (see ``Request.discard_body``)."""
DRAIN_SECONDS = 2.0
MAX_JSON_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest multipart AI request (an image or an audio file with its fields)."""
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class BodyBudget:
    """Request body bytes held in memory, capped across all requests (``max_body_bytes_in_flight``) and per
    client address (``max_body_bytes_per_client``).

    A body is counted as its bytes arrive (a declared Content-Length that does not fit what is left is refused
    at once, unread, but reserves nothing: a silent upload holds nothing), until its request ends; past either
    cap a request is refused with 503 ``insufficient capacity``. Fetched segments are counted the same way.
    """

    def __init__(self, limit: int, per_client: int | None = None) -> None:
        self.limit = limit
        self.per_client = per_client or limit
        self.used = 0
        self.clients: dict[str, int] = {}

    def fits(self, size: int, client: str = "") -> None:
        """503 unless ``size`` more bytes would fit now (nothing is taken)."""
        if self.used + size > self.limit:
            raise InsufficientCapacity("insufficient capacity: too many request bytes in flight, retry later")
        if self.clients.get(client, 0) + size > self.per_client:
            raise InsufficientCapacity("insufficient capacity: too many request bytes in flight from this "
                                       "client, retry later")

    def take(self, size: int, client: str = "") -> None:
        self.fits(size, client)
        self.used += size
        self.clients[client] = self.clients.get(client, 0) + size

    def give(self, size: int, client: str = "") -> None:
        self.used = max(self.used - size, 0)
        left = self.clients.get(client, 0) - size
        if left > 0:
            self.clients[client] = left
        else:
            self.clients.pop(client, None)


class Request:
    def __init__(self, scope: dict[str, Any], receive: Receive, send: Send, budget: BodyBudget,
                 read_timeout: float = 60.0) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.budget = budget
        self.read_timeout = read_timeout
        client = scope.get("client")
        self.client = client_key(str(client[0])) if client else ""
        """The peer's client key (its IPv4 address or IPv6 /64): the per-client share of the body budget is
        counted under it, and so are the cold sender lookups its payment may cost (``clients.CLIENT``)."""
        self.held = 0
        """Body bytes of this request counted in ``budget``."""
        self.creds: Any = None
        """The checked credential headers (``orchestrator.Credentials``), once checked."""
        self.path: str = scope["path"]
        self.method: str = scope["method"]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.started = False
        self.body_done = False
        self.sender = metrics.UNKNOWN_SENDER
        """The verified sender's address, once it is."""
        self.context: dict[str, str] = {}

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    async def body(self, limit: int, *, hasher: Any = None) -> bytes:
        """The whole body, at most ``limit`` bytes (413), counted in the budget (503 past it), in at most
        ``read_timeout`` seconds (408: a slow or silent upload gives its share of the budget back).

        ``hasher`` (``update(bytes)``) is fed each piece as it arrives: its digest is ready with the last byte.
        """
        length = self.header("content-length")
        if length.isdigit() and int(length) > limit:
            raise BodyTooLarge(f"request body is {length} bytes; at most {limit} are accepted")
        if length.isdigit():
            self.budget.fits(int(length), self.client)
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        raise BadInput("client disconnected")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise BodyTooLarge(f"request body is over {limit} bytes")
                    if size > self.held:
                        self.hold(size - self.held)
                    chunks.append(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if not message.get("more_body"):
                        self.body_done = True
                        return b"".join(chunks)
        except TimeoutError:
            raise BodyTimeout(f"request body not received within {self.read_timeout:g} s") from None

    async def discard_body(self) -> None:
        """Before a refusal of a request whose body was not read: read and drop it when its Content-Length is at
        most DRAIN_MAX, so a client still sending a small body reads the answer instead of a connection reset (a
        gateway counts a reset against us, a 503 or 403 it understands). A larger body is left: the connection
        closes on it."""
        length = self.header("content-length")
        if self.body_done or not (length.isdigit() and int(length) <= DRAIN_MAX):
            return  # a large or unsized body is not waited for: the connection closes on it
        size = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while size <= DRAIN_MAX:
                    message = await self.receive()
                    size += len(message.get("body", b""))
                    if message["type"] == "http.disconnect" or not message.get("more_body"):
                        break
        self.body_done = True

    def hold(self, size: int) -> None:
        """Count ``size`` more bytes of this request's in the body budget (503 past it); given back at its end."""
        self.budget.take(size, self.client)
        self.held += size

    async def start(self, status: int, content_type: str, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
        self.started = True
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [(b"content-type", content_type.encode()), *extra]})

    async def write(self, data: bytes, *, more: bool = False) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(self, status: int, data: bytes, content_type: str) -> None:
        await self.start(status, content_type, [(b"content-length", str(len(data)).encode())])
        await self.write(data)

    async def text(self, status: int, message: str) -> None:
        await self.respond(status, (message + "\n").encode(), "text/plain; charset=utf-8")


class HttpApp:
    """The ASGI app; ``jobs`` does the work, this maps paths, errors and metrics."""

    def __init__(self, jobs: Jobs, *, fetch_private: bool = False, max_body_bytes_in_flight: int = 2**62,
                 max_body_bytes_per_client: int | None = None, body_read_timeout: float = 60.0) -> None:
        self.jobs = jobs
        self._fetch_private = fetch_private
        self.budget = BodyBudget(max_body_bytes_in_flight, max_body_bytes_per_client)
        self.body_read_timeout = body_read_timeout
        self._fetches: dict[str, list[Any]] = {}
        """Per transcoding session: [the lock its segment fetches take turns on, how many use it]."""
        self._ai = {p.path: p for p in PIPELINES if p.name in ai.PARAMS}  # live-video-to-video: a later issue

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        req = Request(scope, receive, send, self.budget, self.body_read_timeout)
        endpoint = self._endpoint(req.path)
        started = time.perf_counter()
        outcome = Outcome.OK
        client = CLIENT.set(req.client)
        try:
            await self._route(req, endpoint)
        except Exception as exc:  # every error ends as a refusal the gateway can read
            refusal = refusal_of(exc)
            if refusal.code == "internal":
                log.exception("request failed", extra={"endpoint": endpoint})
            outcome = refusal.outcome if refusal.status_code != 404 else Outcome.CLIENT_ERROR
            metrics.REFUSALS.labels(refusal.code, req.sender).inc()
            log.info("refused", extra={"endpoint": endpoint, "reason": refusal.code, "status": refusal.status_code,
                                       "gateway": req.sender, "client": req.client, **req.context})
            if not req.started:
                await req.discard_body()
                await req.text(refusal.status_code, refusal.message)
            else:
                await self.jobs.fail_started(req, refusal)
        else:
            outcome = req.context.get("outcome", Outcome.OK)  # type: ignore[assignment]
        finally:
            self.budget.give(req.held, req.client)
            CLIENT.reset(client)
        metrics.REQUESTS.labels(endpoint, str(outcome)).inc()
        metrics.REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)

    def _endpoint(self, path: str) -> str:
        if path.startswith("/stream/"):
            return "/stream"
        if path in self._ai or path in ("/segment", "/payment", "/refresh-payment", LIVE_PATH):
            return path
        return "other"

    async def _route(self, req: Request, endpoint: str) -> None:
        if endpoint == "/stream":
            if req.method != "GET":
                raise NotFound("404 page not found")
            await self.jobs.stream(req)
            return
        if endpoint == "other":
            raise NotFound("404 page not found")
        if req.method != "POST":
            raise Refusal405()
        # The credential headers are checked before any body is read (402/403 for a stranger's upload).
        if endpoint == LIVE_PATH:
            raise NotFound("pipeline live-video-to-video is not served by this orchestrator yet")
        if endpoint == "/refresh-payment":
            await self.refresh_payment(req)
            return
        self.jobs.credentials(req)
        if endpoint == "/segment":
            # keccak as the body arrives (the segment hash check), not after it: hidden behind the upload.
            hasher = keccak.new(digest_bits=256)
            body = await req.body(MAX_SEGMENT_BYTES, hasher=hasher)
            fetch, body_hash = None, hasher.digest()
            if req.header("content-type").split(";")[0].strip().lower() == SEGMENT_URI_TYPE:
                uri, body, body_hash = body, b"", None

                async def fetch() -> bytes:  # by jobs.segment, once the request's credentials and balance pass
                    # One fetch per session at a time; its bytes count in the body budget as they arrive.
                    sid = req.creds.session_id
                    entry = self._fetches.setdefault(sid, [asyncio.Lock(), 0])
                    entry[1] += 1
                    try:
                        async with entry[0]:
                            return await fetch_segment(uri, allow_private=self._fetch_private, hold=req.hold)
                    finally:
                        entry[1] -= 1
                        if not entry[1]:
                            del self._fetches[sid]
            await self.jobs.segment(req, body, fetch=fetch, body_hash=body_hash)
        elif endpoint == "/payment":
            await self.jobs.payment(req)
        else:
            pipeline = self._ai[endpoint].name
            if pipeline in ai.FILE_FIELD:
                await self._multipart(req, pipeline)
                return
            body = await req.body(MAX_JSON_BYTES)
            try:
                params = msgspec.json.decode(body, type=ai.PARAMS[pipeline])
            except msgspec.ValidationError as exc:
                raise BadInput(f"invalid request: {exc}") from None
            except msgspec.DecodeError:
                raise BadInput("invalid request: the body is not JSON") from None
            await self.jobs.ai(req, pipeline, params)

    def _precheck_capacity(self, req: Request, pipeline: str) -> None:
        """503 ``insufficient capacity`` before an upload is read when no worker has a free slot for the
        pipeline (for the models the Livepeer-Segment capabilities name, when they name some), as go-livepeer
        checks AI capacity before it takes the request; the model in the form is checked again by ``jobs.ai``."""
        seg = req.creds.segment
        capability = self._ai[req.path].capability
        named = {m for c, m in requested_pairs(seg.capabilities if seg.HasField("capabilities") else None)
                 if c == capability}
        if not any(m.pipeline == pipeline and m.in_use < m.capacity and (not named or m.model_id in named)
                   for m in self.jobs.orch.pool.models()):
            raise InsufficientCapacity()

    async def _multipart(self, req: Request, pipeline: str) -> None:
        file_field = ai.FILE_FIELD[pipeline]
        self._precheck_capacity(req, pipeline)
        fields, files = await parse_form_async(req.header("content-type"), await req.body(MAX_UPLOAD_BYTES))
        upload = files.get(file_field)
        if upload is None or not upload.data:
            raise BadInput(f"invalid request: the {file_field} file is required")
        try:
            params = ai.params(pipeline, fields)
        except msgspec.ValidationError as exc:
            raise BadInput(f"invalid request: {exc}") from None
        width = height = 0
        measure = None
        if file_field == "image":
            width, height = image_size(upload.data)
        elif pipeline == "audio-to-text":  # ffprobe runs once the payment is accepted, not for a stranger's upload
            async def measure(payer: str) -> AudioDuration:
                return await audio_duration(upload.data, payer)
        await self.jobs.ai(req, pipeline, params, body=upload.data, width=width, height=height, measure=measure,
                           extra={"filename": upload.filename, "content_type": upload.content_type})

    async def refresh_payment(self, req: Request) -> None:
        try:
            data = json.loads(await req.body(64 * 1024))
            sender, manifest = data.get("sender", ""), data.get("manifest_id", "")
        except (ValueError, AttributeError):
            raise BadInput("invalid request body") from None
        if not isinstance(sender, str) or not _ADDRESS.fullmatch(sender):
            raise BadInput("invalid sender")
        if not isinstance(manifest, str) or not manifest:
            raise BadInput("missing manifest_id")
        address = bytes.fromhex(sender[2:])
        webhook = self.jobs.orch.webhook
        if webhook is not None:  # -authWebhookUrl decides who gets ticket params and tokens, here as on GetOrchestrator
            await webhook.authenticate(checksum_address(address))
        # "no session" and "unknown sender" are one answer: 409 session has no fixed price.
        info = await self.jobs.refresh(address, manifest)
        reply = {"payment_params": base64.b64encode(info.SerializeToString()).decode(),
                 "orchestrator": self.jobs.orch.transcoder_uri, "manifest_id": manifest,
                 "payment_url": self.jobs.orch.transcoder_uri + "/payment"}
        await req.respond(200, json.dumps(reply).encode(), "application/json")


SEGMENT_URI_TYPE = "application/vnd+livepeer.uri"
LIVE_PATH = "/live-video-to-video"


class BodyTimeout(NegotiatorError):
    code = "body_timeout"
    status_code = 408
    outcome = Outcome.CLIENT_ERROR


class Refusal405(NegotiatorError):
    code = "method_not_allowed"
    status_code = 405
    outcome = Outcome.CLIENT_ERROR

    def __init__(self) -> None:
        super().__init__("method not allowed")

