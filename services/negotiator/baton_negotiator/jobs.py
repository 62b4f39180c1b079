"""What each job endpoint does: credentials, capacity, payment, dispatch, billing, the answer.

The order follows go-livepeer: headers (402/403, checked before the body is
read), capacity (503 before any payment is taken), payment (400 with the payment
core's text), balance (400 ``Insufficient balance``: the job's estimated cost is
reserved, i.e. taken up front), the job, then the settlement: price x the units
the worker actually produced, the rest given back. A job that failed or produced
nothing is billed nothing; a broken LLM stream the tokens it delivered; a
reservation is settled once, after the result is in hand.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import mimetypes
import uuid
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from nats.js.object_store import ObjectStore

from baton_common.capabilities import manifest_id as manifest_of
from baton_common.capabilities import pipeline_by_name
from baton_common.pm import Scope, Validation, price_info_for, ticket_params_to_pb
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.jobs import JobChunk, JobResult

from .billing import AUDIO_MIN_UNITS, audio_max_units, billed_units, job_params, model_of
from .dispatch import Dispatcher
from .errors import BadInput, InsufficientCapacity, JobFailed, NegotiatorError, NoFixedPrice, NotFound
from .media import AudioDuration
from .orchestrator import Credentials, Orchestrator, requested_pairs, scope_pair
from .payments import Reservation, parse_payment, sender_label
from .results import RESPONSE_JSON, Recent, replace_urls
from .sessions import Sessions
from .transcoding import Transcoding

if TYPE_CHECKING:
    from .http import Request

__all__ = ["Jobs"]

log = logging.getLogger("baton.negotiator")
AI_WORKER_AUTH = "Livepeer-AI-Worker-1.0"


class Jobs(Transcoding):
    """The job endpoints' work; ``/segment`` is in ``Transcoding``."""

    def __init__(self, orch: Orchestrator, dispatcher: Dispatcher, sessions: Sessions, bodies: ObjectStore | None,
                 *, timeout_for: Any) -> None:
        self.orch = orch
        self.dispatcher = dispatcher
        self.sessions = sessions
        self._bodies = bodies
        self._timeout_for = timeout_for
        self._recent = Recent()

    def credentials(self, req: Request) -> Credentials:
        """Check the request's headers (402/403), before its body is read; kept on ``req.creds``."""
        payment = parse_payment(req.header("Livepeer-Payment"))
        creds = self.orch.credentials(payment, req.header("Livepeer-Segment"))
        req.creds = creds
        return creds

    def _credentials(self, req: Request) -> Credentials:
        return req.creds if req.creds is not None else self.credentials(req)

    def _proven(self, req: Request, validation: Validation | None, creds: Credentials, price: Fraction) -> None:
        """On-chain, the sender a payment names must be proven before it spends (see ``SessionBindings``);
        the refusal metric names it only then."""
        payments = self.orch.payments
        if not payments.onchain:
            return
        if validation is not None and validation.verified and validation.sender == creds.sender:
            req.sender = sender_label(creds.sender)
        if price > 0:
            payments.require_verified(validation, creds.sender, creds.token_key)
            if payments.proven(creds.sender, creds.token_key):
                req.sender = sender_label(creds.sender)

    async def _settle(self, reservation: Reservation, units: int) -> None:
        try:
            await asyncio.shield(self.orch.payments.settle(reservation, units))
        except Exception:  # the answer is out or the job failed; a lost settle is logged, never retried twice
            log.exception("settling a job's reservation failed", extra={"manifest": reservation.manifest_id})

    # --- batch AI -----------------------------------------------------------------------

    async def ai(self, req: Request, pipeline_name: str, params: Any, *, body: bytes = b"", width: int = 0,
                 height: int = 0, measure: Callable[[str], Awaitable[AudioDuration]] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        """Run one batch AI job: capacity, payment, reservation, dispatch, settle, answer. ``measure(payer)`` gives an
        audio upload's duration (ffprobe: its ms, and whether they are an estimate), awaited once the payment is
        accepted and before the reservation; one payer's (the sender on-chain, the client offchain) take turns."""
        creds = self._credentials(req)
        pipeline = pipeline_by_name(pipeline_name)
        model_id = model_of(params)
        req.context.update(capability=str(pipeline.capability), model=model_id)
        if not model_id:
            raise BadInput(f"invalid request: {'model' if pipeline_name == 'llm' else 'model_id'} is required")
        if pipeline_name == "text-to-speech" and not params.text.strip():
            raise BadInput("invalid request: text is required")  # it would bill nothing
        if not any(m.pipeline == pipeline_name and m.model_id == model_id and m.in_use < m.capacity
                   for m in self.orch.pool.models()):
            raise InsufficientCapacity()
        manifest = manifest_of(pipeline.capability, model_id)
        sender = creds.sender
        payments = self.orch.payments
        validation = await payments.receive(creds.payment, manifest, Scope.of(pipeline.capability, model_id))
        quoted = await self.orch.price(sender, [(pipeline.capability, model_id)]) if payments.onchain else 0
        price = await payments.session_price(sender, manifest, quoted)
        self._proven(req, validation, creds, price)
        audio = None
        if measure is not None:  # ffprobe only for a balance that pays the shortest clip
            await payments.check_funds(sender, manifest, price, AUDIO_MIN_UNITS)
            audio = await measure(sender.hex() if payments.onchain else req.client)  # one payer's take turns
        units = billed_units(pipeline_name, params, width, height, audio.ms if audio is not None else 0)
        max_units = audio_max_units(units, audio.estimated) if audio is not None else 0
        # The job's cost is taken from the balance before it runs (audio: its measured seconds).
        reservation = await payments.reserve(sender, manifest, price, units)
        job = {**job_params(params), **(extra or {})}
        stream = pipeline_name == "llm" and params.stream
        delivered = [0]

        async def relay(chunk: JobChunk) -> None:
            if not req.started:
                await req.start(200, "text/event-stream", [(b"cache-control", b"no-cache")])
            await req.write(f"data: {chunk.data}\n\n".encode(), more=True)
            if chunk.data.strip() != "[DONE]":
                delivered[0] += 1

        try:
            finished = await self.dispatcher.run("inference", pipeline_name, model_id, params=job, body=body,
                                                 billed_units=units, max_units=max_units,
                                                 timeout=self._timeout_for(pipeline_name), sender=req.sender,
                                                 on_chunk=relay if stream else None)
        except BaseException:
            # Nothing produced is billed nothing; a stream that broke off is billed the tokens it delivered.
            await self._settle(reservation, min(delivered[0], units) if stream else 0)
            raise
        result = finished.result
        # Billed per spec section 6 from the request as it ran (the OpenAPI defaults filled in); the
        # worker's count is taken only where the units come from the input media (audio seconds).
        # Audio: at most the container's duration as reserved (a file that decodes longer is the worker's to
        # refuse), or for an estimated duration (MP3, ADTS AAC) what it decoded, up to the estimate's slack.
        if audio is not None:
            billed = min(max(result.units, AUDIO_MIN_UNITS), max_units if audio.estimated else units)
        else:
            billed = units
        if stream:
            await self._settle(reservation, billed)
            if not req.started:
                await req.start(200, "text/event-stream", [(b"cache-control", b"no-cache")])
            await req.write(b"", more=False)
        else:
            data_urls = req.header("Authorization") != AI_WORKER_AUTH
            try:
                body = await self._ai_body(result, data_urls=data_urls)
                await self.dispatcher.delete_outputs(result)
            except BaseException:
                await self._settle(reservation, 0)
                raise
            # Settled once the output is in hand, before the answer goes out.
            await self._settle(reservation, billed)
            await req.respond(200, body, "application/json")

    async def _ai_body(self, result: JobResult, *, data_urls: bool) -> bytes:
        """The runner's JSON with each media url naming an output replaced by a data: or /stream URL.

        A JSON too big to ride inline comes as the output ``response.json`` (docs/architecture.md)."""
        document = next((o for o in result.outputs if o.name == RESPONSE_JSON), None)
        raw = result.data
        if document is not None:
            raw = document.data if document.ref is None else await self.dispatcher.read_output(document.ref)
        outputs = [o for o in result.outputs if o is not document]
        if not outputs:
            return raw
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            raise JobFailed("the worker's result is not JSON") from None
        urls: dict[str, str] = {}
        request_id = uuid.uuid4().hex
        for output in outputs:
            data = output.data if output.ref is None else await self.dispatcher.read_output(output.ref)
            if data_urls and output.content_type.startswith("image/"):
                urls[output.name] = f"data:{output.content_type};base64,{base64.b64encode(data).decode()}"
            else:
                path = f"{request_id}/{output.name}"
                await self._keep(path, data)
                urls[output.name] = f"{self.orch.transcoder_uri}/stream/{path}"
        return json.dumps(replace_urls(doc, urls)).encode()

    async def fail_started(self, req: Request, refusal: NegotiatorError) -> None:
        """An error after the answer started (SSE, /segment's early 200): said in the body, then closed."""
        if req.path == "/llm":
            await req.write(f"data: {json.dumps({'error': refusal.message})}\n\n".encode())
        elif req.path == "/segment":
            # A TranscodeResult with its error, as go-livepeer writes after its early 200: an empty body reads
            # as "UnknownResponse" to a gateway, which then drops this orchestrator.
            seq = req.creds.segment.seq if req.creds is not None else 0
            error = "OrchestratorBusy" if refusal.status_code == 503 else refusal.message
            await req.write(lp_rpc_pb2.TranscodeResult(seq=seq, error=error).SerializeToString())
        else:
            await req.write(b"")

    # --- payments -----------------------------------------------------------------------

    async def payment(self, req: Request) -> None:
        creds = self._credentials(req)
        seg = creds.segment
        caps = seg.capabilities if seg.HasField("capabilities") else None
        pairs = requested_pairs(caps)
        try:
            manifest = bytes(seg.manifestId).decode()
        except UnicodeDecodeError:
            raise BadInput("invalid manifestId") from None
        # The balance the payment lands in (the manifest) and the price it is checked against (the scope) must name
        # the same job: else a cheap model's quote would pin an expensive model's session price.
        named = scope_pair(manifest)
        if pairs != ([named] if named else []):
            raise BadInput("Invalid payment: manifestId does not match the segment's capabilities")
        scope = Scope.of(*named) if named else Scope.base()
        validation = await self.orch.payments.receive(creds.payment, manifest, scope)
        if validation is not None and validation.verified and validation.sender == creds.sender:
            req.sender = sender_label(creds.sender)
            self.orch.payments.require_verified(validation, creds.sender, creds.token_key)  # binds the session
        info = await self.orch.info(creds.sender, caps, seg.auth_token)
        await req.respond(200, lp_rpc_pb2.PaymentResult(info=info).SerializeToString(), "application/x-protobuf")

    async def refresh(self, sender: bytes, manifest: str) -> lp_rpc_pb2.OrchestratorInfo:
        payments = self.orch.payments
        if not payments.onchain:
            raise NoFixedPrice("session has no fixed price")
        fixed = await payments.fixed_price(sender, manifest)  # type: ignore[union-attr]
        if fixed is None:
            raise NoFixedPrice("session has no fixed price")
        named = scope_pair(manifest)
        scope = Scope.of(*named) if named else Scope.base()
        info = await self.orch.info(sender, None)
        price = price_info_for(fixed)
        params = await payments.quote(sender, price, scope)
        info.price_info.pricePerUnit, info.price_info.pixelsPerUnit = price.price_per_unit, price.pixels_per_unit
        if params is not None:
            info.ticket_params.CopyFrom(ticket_params_to_pb(params))
        return info

    # --- results ------------------------------------------------------------------------

    async def _keep(self, path: str, data: bytes) -> None:
        if self._bodies is None:
            raise JobFailed("no store for results")
        await self.dispatcher.put(f"stream/{path}", data)

    async def stream(self, req: Request) -> None:
        path = req.path.removeprefix("/stream/")
        if not path or ".." in path.split("/"):
            raise NotFound("404 page not found")
        if self._bodies is None:
            raise NotFound("404 page not found")
        data = self._recent.get(path)
        if data is None:
            try:  # read whole into memory: counted in the body budget first (503 past it, as an upload)
                data = await self.dispatcher.read_linked(f"stream/{path}", hold=req.hold)
            except NegotiatorError:
                raise
            except Exception:
                raise NotFound("404 page not found") from None
            if data is None:
                raise NotFound("404 page not found")
            self._recent.add(path, data)  # the next GETs of it (a gateway's retries, other renditions' readers)
        # Results are served for as long as baton-bodies keeps them (its TTL: 15 min), by any replica.
        kind = mimetypes.guess_type(path)[0] or ("video/mp2t" if path.endswith(".ts") else "application/octet-stream")
        await req.respond(200, data, kind)
