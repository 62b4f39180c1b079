"""The transcoding half of ``Jobs``: ``/segment``, checked, paid, transcoded, its renditions kept and signed.

go-livepeer's order: the segment's credentials (403 for an unparseable
profile or duration, as ``verifySegCreds``), the session cap (503), the
payment, the segment's estimated cost reserved; then the early 200, the job,
and every error from there on as a TranscodeResult error in the body. A
segment that produced nothing gives its reservation back before the answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from baton_common.pm import Scope, keccak256
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.jobs import Output
from baton_common.schemas.transcode import TranscodeParams

from . import metrics
from .billing import MIN_SEGMENT_MS, segment_estimate
from .dispatch import is_output_of
from .errors import BadSegmentHeader, InsufficientCapacity, JobFailed, NegotiatorError
from .orchestrator import Credentials
from .payments import Reservation, sender_label
from .segdata import check_segment, contract_profile
from .sessions import SEGMENT_BUFFER

if TYPE_CHECKING:
    from .http import Request

__all__ = ["Transcoding"]

HASH_INLINE_MAX = 64 * 1024
"""Larger renditions are hashed (keccak) off the event loop, beside the reads of the others."""


class Transcoding:
    """Mixed into ``Jobs``, whose ``orch``, ``dispatcher``, ``sessions``, ``_bodies``, ``_recent``,
    ``_timeout_for``, ``_credentials``, ``_settle`` and ``_keep`` it uses."""

    async def segment(self, req: Request, body: bytes, *, fetch: Callable[[], Awaitable[bytes]] | None = None,
                      body_hash: bytes | None = None) -> None:
        """A segment (``body``, or fetched by ``fetch`` once credentials and balance pass) transcoded.

        ``body_hash``: the keccak of ``body`` where the caller hashed it as it arrived (else it is hashed here).
        """
        creds = self._credentials(req)
        check_segment(creds.segment)  # as go-livepeer's verifySegCreds: 403 before any payment is taken
        self.sessions.check(creds.session_id)  # capped: 503 before any payment is taken
        sender, payments = creds.sender, self.orch.payments
        validation = await payments.receive(creds.payment, creds.session_id, Scope.base())
        if payments.onchain and validation is not None and validation.verified and validation.sender == sender:
            req.sender = sender_label(sender)
        quoted = await self.orch.price(sender, []) if payments.onchain else 0
        price = await payments.session_price(sender, creds.session_id, quoted)
        # The balance must cover the segment's estimated cost, as go-livepeer gateways estimate it; it is
        # taken now and settled with the output pixels (a segment that produced nothing costs nothing).
        reservation = await payments.reserve(sender, creds.session_id, price, segment_estimate(creds.segment))
        billed = [0]
        try:
            await self._transcode(req, creds, body, fetch, reservation, billed, body_hash)
        finally:
            await self._settle(reservation, billed[0])

    async def _transcode(self, req: Request, creds: Credentials, body: bytes,
                         fetch: Callable[[], Awaitable[bytes]] | None, reservation: Reservation,
                         billed: list[int], body_hash: bytes | None = None) -> None:
        seg, sender = creds.segment, creds.sender
        job_id = uuid.uuid4().hex
        if fetch is not None:
            body, body_hash = await fetch(), None
        if (keccak256(body) if body_hash is None else body_hash) != bytes(seg.hash):
            raise BadSegmentHeader("Mismatched segment hash")
        # Only a paid-for segment opens (and counts toward -maxSessions) a transcoding session, and only while a
        # transcode worker is there to take it: else one segment per session would cap GetOrchestrator for 70 s.
        if creds.session_id not in self.sessions and not self.orch.pool.transcode_capacity():
            raise InsufficientCapacity("insufficient capacity: no transcoder")
        session = self.sessions.open(creds.session_id)
        info = await self.orch.info(sender, seg.capabilities if seg.HasField("capabilities") else None,
                                    seg.auth_token)
        result = lp_rpc_pb2.TranscodeResult(seq=seg.seq)
        result.info.CopyFrom(info)
        # go-livepeer answers 200 and flushes before transcoding; errors from here on go in the body.
        await req.start(200, "application/vnd+livepeer.transcoderesult")
        if session.queued > SEGMENT_BUFFER:  # one transcoding and SEGMENT_BUFFER waiting, as go-livepeer's segChan
            result.error = "OrchestratorBusy"
            req.context["outcome"] = "capacity"
            metrics.REFUSALS.labels("busy", req.sender).inc()
            await self._settle(reservation, 0)  # given back before the answer, as on success
            await req.write(result.SerializeToString())
            return
        session.queued += 1
        try:
            async with session.lock:
                profiles = seg.fullProfiles3 or seg.fullProfiles2 or seg.fullProfiles
                params = msgspec.to_builtins(TranscodeParams(
                    profiles=tuple(contract_profile(p) for p in profiles), seq=seg.seq,
                    # the duration the reservation assumed: the worker's frame budget holds the output to it
                    duration_ms=max(seg.duration, MIN_SEGMENT_MS),
                    manifest_id=bytes(seg.manifestId).decode("utf-8", "replace")))
                try:
                    finished = await self.dispatcher.run("transcode", "transcode", "", params=params, body=body,
                                                         timeout=self._timeout_for("transcode"), sender=req.sender,
                                                         job_id=job_id)
                except NegotiatorError as exc:
                    result.error = "OrchestratorBusy" if exc.status_code == 503 else exc.message
                    req.context["outcome"] = str(exc.outcome)
                    metrics.REFUSALS.labels(exc.code, req.sender).inc()
                    await self._settle(reservation, 0)
                    await req.write(result.SerializeToString())
                    return
        finally:
            session.queued -= 1
        outputs = finished.result.outputs
        if not outputs:
            result.error = "transcoding produced no output"
            req.context["outcome"] = "failed"
            await self._settle(reservation, 0)
            await req.write(result.SerializeToString())
            return
        # Read (digest checked), hashed and kept side by side: each is mostly waiting on the bus.
        tasks = [asyncio.ensure_future(self._rendition(job_id, creds.session_id, seg.seq, n, output))
                 for n, output in enumerate(outputs)]
        try:
            kept = await asyncio.gather(*tasks)
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.dispatcher.delete_outputs(finished.result)  # the links of a failed segment lead nowhere
            if not isinstance(exc, NegotiatorError):
                raise
            result.error = exc.message  # in the body, as every error once the 200 is out
            req.context["outcome"] = str(exc.outcome)
            metrics.REFUSALS.labels(exc.code, req.sender).inc()
            await self._settle(reservation, 0)
            await req.write(result.SerializeToString())
            return
        # The worker's objects that the links serve stay until the bucket's TTL, as kept results do.
        linked = frozenset(o.ref.name for o in outputs if o.ref is not None and is_output_of(o.ref.name, job_id))
        await self.dispatcher.delete_outputs(finished.result, keep=linked)
        hashes, pixels = b"", 0
        for (path, digest, data), output in zip(kept, outputs, strict=True):
            self._recent.add(path, data)
            result.data.segments.add(url=f"{self.orch.transcoder_uri}/stream/{path}", pixels=output.pixels)
            hashes += digest
            pixels += output.pixels
        result.data.sig = self.orch.sign(keccak256(hashes))
        metrics.MIL_PIXELS.inc(pixels / 1e6)
        billed[0] = finished.result.units or pixels
        await self._settle(reservation, billed[0])  # before the answer goes out
        await req.write(result.SerializeToString())

    async def _rendition(self, job_id: str, session_id: str, seq: int, n: int,
                         output: Output) -> tuple[str, bytes, bytes]:
        """One rendition read (its digest checked), hashed for the signature and kept for ``/stream``:
        its path, keccak and bytes.

        A rendition the worker put in ``baton-bodies`` as this job's output is served from there through a
        link (no second copy, no delete); one that came inline is put.
        """
        data = output.data if output.ref is None else await self.dispatcher.read_output(output.ref)
        digest = await asyncio.to_thread(keccak256, data) if len(data) > HASH_INLINE_MAX else keccak256(data)
        name = output.name or f"P{n}"
        ext = ".mp4" if output.content_type == "video/mp4" else ".ts"
        path = f"{session_id}/{name}/{seq}{ext}"
        if output.ref is not None and is_output_of(output.ref.name, job_id):
            if self._bodies is None:
                raise JobFailed("no store for results")
            await self.dispatcher.link(f"stream/{path}", output.ref.name)
        else:
            await self._keep(path, data)
        return path, digest, data
