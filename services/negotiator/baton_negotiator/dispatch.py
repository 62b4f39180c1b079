"""Dispatch: one job to one worker that holds its (pipeline, model) warm with a free slot.

Per docs/architecture.md: a core-NATS request on the worker's own subject,
the reply (``JobChunk``* then ``JobResult`` | ``JobError``) on an inbox of ours.
No responders or a retryable refusal (``busy``, ``model_not_loaded``): the next
worker. A worker whose advert disappears or goes stale while it holds our job
died: the job is retried once on another worker, unless chunks were already
relayed. Slots are released on every path. Bodies above ``INLINE_BODY_MAX``
go through ``baton-bodies`` (in ``BODY_CHUNK`` pieces: each one is a
JetStream round trip); the job's input is deleted when it ends, its outputs
once read (or, for renditions, served from where the worker put them: see
:meth:`Dispatcher.link`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats
from nats.js import api
from nats.js.kv import MSG_ROLLUP_SUBJECT
from nats.js.object_store import OBJ_META_PRE_TEMPLATE, ObjectStore

from baton_common.schemas import decode, encode
from baton_common.schemas.jobs import (
    BODIES_BUCKET,
    INLINE_BODY_MAX,
    JOB_ERROR_STATUS,
    BodyRef,
    JobChunk,
    JobError,
    JobReply,
    JobRequest,
    JobResult,
)
from baton_common.schemas.workers import WorkerKind

from .domain import Slot, WorkerPool
from .errors import BadInput, InsufficientCapacity, JobFailed, Refusal

__all__ = ["BODY_CHUNK", "Dispatcher", "Finished", "is_output_of"]

log = logging.getLogger("baton.negotiator")
LIVENESS_POLL = 0.25
BODY_CHUNK = 512 * 1024
"""Chunk size of the bodies this side puts: 4x fewer acknowledged publishes than nats-py's 128 KiB default,
well below NATS's 1 MB max payload (any reader reads any chunk size: it is in the object's meta)."""
OnChunk = Callable[[JobChunk], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Finished:
    result: JobResult
    worker_id: str
    attempts: int


class _WorkerDied(Exception):
    pass


class Dispatcher:
    def __init__(self, nc: nats.NATS, pool: WorkerPool, bodies: ObjectStore | None) -> None:
        self._nc = nc
        self._pool = pool
        self._bodies = bodies
        self._cleanups: set[asyncio.Future[None]] = set()

    async def run(
        self,
        kind: WorkerKind,
        pipeline: str,
        model_id: str,
        *,
        params: dict[str, Any],
        body: bytes = b"",
        billed_units: int = 0,
        max_units: int = 0,
        timeout: float,
        sender: str = "",
        on_chunk: OnChunk | None = None,
        job_id: str = "",
    ) -> Finished:
        """Run the job to its result; raises NegotiatorErrors (503 when no worker has a slot)."""
        job_id = job_id or uuid.uuid4().hex
        deadline = time.time() + timeout
        body_ref = None
        try:
            if len(body) > INLINE_BODY_MAX:
                body_ref = await self._put_body(job_id, body)
                body = b""
            tried: list[str] = []
            died = 0
            while True:
                slot = self._pool.reserve(kind, pipeline, model_id, exclude=tried)
                if slot is None:
                    if died:
                        raise JobFailed(f"the worker running the job failed and no other worker can take it "
                                        f"({pipeline} {model_id})".replace(" )", ")"))
                    raise InsufficientCapacity()
                tried.append(slot.worker_id)
                request = JobRequest(job_id=job_id, kind=kind, pipeline=pipeline, model_id=model_id,
                                     deadline=deadline, billed_units=billed_units, max_units=max_units, params=params, body=body,
                                     body_ref=body_ref, stream=on_chunk is not None, sender=sender)
                relayed = [0]
                try:
                    result = await self._attempt(slot, request, deadline, on_chunk, relayed)
                    return Finished(result, slot.worker_id, len(tried))
                except _NextWorker:
                    continue
                except _WorkerDied:
                    log.warning("worker died mid-job", extra={"worker": slot.worker_id, "job_id": job_id})
                    if relayed[0] or died or time.time() >= deadline:
                        raise JobFailed("the worker running the job failed") from None
                    died += 1
                finally:
                    slot.release()
        finally:
            if body_ref is not None:  # beside what the caller does with the result, not before it
                task = asyncio.ensure_future(self.delete_objects(job_id))
                self._cleanups.add(task)
                task.add_done_callback(self._cleanups.discard)

    async def _attempt(self, slot: Slot, request: JobRequest, deadline: float, on_chunk: OnChunk | None,
                       relayed: list[int]) -> JobResult:
        inbox = self._nc.new_inbox()
        replies: asyncio.Queue[nats.aio.msg.Msg] = asyncio.Queue()

        async def put(msg: nats.aio.msg.Msg) -> None:
            replies.put_nowait(msg)

        sub = await self._nc.subscribe(inbox, cb=put)
        try:
            await self._nc.publish(slot.job_subject, encode(request), reply=inbox)
            expected_seq = 0
            while True:
                msg = await self._next(replies, slot, deadline)
                headers = msg.headers or {}
                if headers.get("Status") == "503" and not msg.data:
                    raise _NextWorker()  # no responders: the worker is gone
                try:
                    reply = decode(msg.data, JobReply)  # type: ignore[arg-type]
                except msgspec.ValidationError as exc:
                    raise JobFailed(f"the worker sent a reply that does not decode: {exc}") from None
                match reply:
                    case JobChunk(seq=seq):
                        if seq != expected_seq or on_chunk is None:
                            raise JobFailed(f"stream chunk {seq} arrived, {expected_seq} was expected")
                        expected_seq += 1
                        relayed[0] += 1
                        await on_chunk(reply)
                    case JobError(code=code, message=message, retryable=retryable):
                        if code in ("busy", "model_not_loaded") and not relayed[0]:
                            raise _NextWorker()
                        status = JOB_ERROR_STATUS.get(code, 500)
                        if code == "bad_input":
                            raise BadInput(message or "bad input")
                        if status == 503:
                            raise InsufficientCapacity()
                        del retryable
                        raise Refusal(message or code, code=f"job_{code}", status_code=status,
                                      outcome=JobFailed.outcome)
                    case JobResult():
                        return reply
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _next(self, replies: asyncio.Queue[nats.aio.msg.Msg], slot: Slot, deadline: float) -> nats.aio.msg.Msg:
        """The next reply; _WorkerDied once the worker's advert is gone or stale, JobFailed past the deadline."""
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise JobFailed("the job did not finish within its timeout")
            try:
                return await asyncio.wait_for(replies.get(), min(LIVENESS_POLL, left))
            except TimeoutError:
                if not any(a.worker_id == slot.worker_id for a in self._pool.fresh()):
                    raise _WorkerDied() from None

    async def _put_body(self, job_id: str, body: bytes) -> BodyRef:
        if self._bodies is None:
            raise InsufficientCapacity("insufficient capacity")
        name = f"{job_id}/in"
        try:
            await self.put(name, body)
        except Exception as exc:  # a full store refuses the put: capacity
            log.warning("body store refused a body", extra={"error": repr(exc)})
            raise InsufficientCapacity() from None
        return BodyRef(name=name, size=len(body), sha256=hashlib.sha256(body).hexdigest())

    async def read_output(self, ref: BodyRef) -> bytes:
        if self._bodies is None:
            raise JobFailed("no body store")
        result = await self._bodies.get(ref.name)
        data = result.data or b""
        if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256:
            raise JobFailed(f"output {ref.name} does not match its digest")
        return data

    async def put(self, name: str, data: bytes) -> None:
        """Put object ``name`` in ``baton-bodies``, in ``BODY_CHUNK`` pieces."""
        if self._bodies is None:
            raise JobFailed("no body store")
        options = api.ObjectMetaOptions(max_chunk_size=min(BODY_CHUNK, self._nc.max_payload))
        await self._bodies.put(name, data, meta=api.ObjectMeta(name=name, options=options))

    async def link(self, name: str, target: str) -> None:
        """Make ``name`` a NATS object-store link to the object ``target`` of ``baton-bodies``.

        One small meta message (as ``nats object link`` writes it) instead of a copy of the bytes:
        ``target`` keeps its chunks until the bucket's TTL, and a reader of ``name`` is sent to it.
        """
        info = api.ObjectInfo(name=name, bucket=BODIES_BUCKET, nuid=uuid.uuid4().hex, size=0, chunks=0,
                              mtime=datetime.now(UTC).isoformat(),
                              options=api.ObjectMetaOptions(link=api.ObjectLink(bucket=BODIES_BUCKET, name=target)))
        subject = OBJ_META_PRE_TEMPLATE.format(bucket=BODIES_BUCKET,
                                               obj=base64.urlsafe_b64encode(name.encode()).decode())
        await self._nc.jetstream().publish(subject, json.dumps(info.as_dict()).encode(),
                                           headers={api.Header.ROLLUP: MSG_ROLLUP_SUBJECT})

    async def read_linked(self, name: str, hold: Callable[[int], None] = lambda size: None) -> bytes | None:
        """The bytes of object ``name``, following a link only to a job's output (never an input). ``hold`` is
        told the size before the object is read into memory (the body budget: it refuses past it)."""
        if self._bodies is None:
            return None
        info = await self._bodies.get_info(name)
        link = info.options.link if info.options is not None else None
        if link is not None:
            if link.bucket != BODIES_BUCKET or not link.name or not is_output_of(link.name):
                return None
            name = link.name
            info = await self._bodies.get_info(name)
        hold(int(info.size or 0))
        return (await self._bodies.get(name)).data or b""

    async def delete_outputs(self, result: JobResult, *, keep: frozenset[str] = frozenset()) -> None:
        """Delete the output objects a worker put for this job (once they are read), but those in ``keep``."""
        if self._bodies is None:
            return
        for output in result.outputs:
            if output.ref is not None and output.ref.name not in keep:
                with contextlib.suppress(Exception):
                    await self._bodies.delete(output.ref.name)

    async def delete_objects(self, job_id: str) -> None:
        if self._bodies is None:
            return
        for name in (f"{job_id}/in",):
            with contextlib.suppress(Exception):
                await self._bodies.delete(name)


class _NextWorker(Exception):
    pass


_OUTPUT = re.compile(r"[0-9a-f]{32}/out/[0-9]{1,6}")


def is_output_of(name: str, job_id: str = "") -> bool:
    """Whether ``name`` is an output object ``<job_id>/out/<n>`` (of ``job_id``, when given) of a uuid-named job."""
    return _OUTPUT.fullmatch(name) is not None and (not job_id or name.startswith(f"{job_id}/"))

