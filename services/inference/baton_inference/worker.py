"""The worker on the bus: jobs on its own subject, answered by the Triton model of (pipeline, model_id).

A job (``JobRequest``) gets ``JobChunk``s (LLM ``stream``), then one
``JobResult`` or ``JobError``, on its reply subject. The request's fields are
checked against the pipeline's type (``baton_common.schemas.ai``) before
Triton sees them; the model checks the file itself (format, size). Bodies
above ``INLINE_BODY_MAX`` come and go through the ``baton-bodies`` object
store. The runner's media (``data:`` URLs) leave as result files the JSON
names, and its ``baton`` entry (the units it measured: audio seconds) as
``JobResult.units``. A job lets go of its slot, and a stale advert is put
right, before its last reply.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.object_store import ObjectStore

from baton_common.schemas import ai, decode, encode
from baton_common.schemas.jobs import INLINE_BODY_MAX, BodyRef, JobChunk, JobError, JobRequest, JobResult, Output

from . import metrics
from .batching import Gather
from .domain import BATCHING, DECOUPLED, with_audio_limit
from .errors import BadInput, BodyMissing, Busy, DeadlineExceeded, InferenceError, ModelNotLoaded, from_code
from .manager import WarmModels
from .triton import Triton

__all__ = ["Worker"]

log = logging.getLogger("baton.inference.jobs")
MEDIA_EXT = {"image/png": "png", "image/jpeg": "jpg", "audio/wav": "wav", "audio/mpeg": "mp3", "video/mp4": "mp4"}


class Worker:
    def __init__(self, models: WarmModels, triton: Triton, bodies: ObjectStore | None, nc: Any,
                 *, settle: Callable[[str, str], Awaitable[None]] | None = None, gather_ms: float = 0.0) -> None:
        self.models = models
        self.triton = triton
        self.bodies = bodies
        self.nc = nc
        self.settle = settle
        """Called once a job has let go of its slot, before its last reply: an advert that showed the slot
        busy is corrected first, so the negotiator's next job for a capacity-1 model is not refused."""
        self.gather_ms = gather_ms
        """Longest wait for the rest of a burst while its model is idle (``batching.Gather``); 0: none."""
        self._gathers: dict[tuple[str, int], Gather] = {}

    async def on_msg(self, msg: Msg) -> None:
        try:
            req = decode(msg.data, JobRequest)
        except msgspec.ValidationError as exc:
            await self._reply(msg, JobError(job_id="", code="bad_input", message=f"not a JobRequest: {exc}"))
            return
        started = time.monotonic()
        metrics.REQUESTED.labels(req.pipeline, req.model_id).inc()
        streamed = 0
        try:
            async for item in self.run(req):
                if isinstance(item, JobResult):
                    await self._settle(req)
                    await self._reply(msg, item)
                    break
                await self._reply(msg, JobChunk(job_id=req.job_id, seq=streamed, data=item))
                streamed += 1
        except InferenceError as exc:
            metrics.ERRORS.labels(exc.code, req.pipeline, req.model_id).inc()
            await self._settle(req)
            await self._reply(msg, JobError(job_id=req.job_id, code=exc.code, message=exc.message,  # type: ignore[arg-type]
                                            retryable=exc.retryable and streamed == 0))
        except Exception:
            log.exception("job failed", extra={"job_id": req.job_id})
            metrics.ERRORS.labels("internal", req.pipeline, req.model_id).inc()
            await self._settle(req)
            await self._reply(msg, JobError(job_id=req.job_id, code="internal", message="internal error"))
        finally:
            metrics.JOB_SECONDS.labels(req.pipeline, req.model_id).observe(time.monotonic() - started)

    async def _settle(self, req: JobRequest) -> None:
        if self.settle is not None:
            try:
                await self.settle(req.pipeline, req.model_id)
            except Exception as exc:  # noqa: BLE001 - the advert is advisory; the job's answer goes out regardless
                log.warning("could not correct the advert", extra={"error": repr(exc)})

    async def _reply(self, msg: Msg, reply: msgspec.Struct) -> None:
        if isinstance(reply, JobResult) and self._result_too_big(reply):
            reply = await self._store_result(reply)
        if msg.reply:
            await self.nc.publish(msg.reply, encode(reply))

    # -- one job -----------------------------------------------------------

    async def run(self, req: JobRequest) -> Any:
        """An async generator: the stream's chunks (str), then the JobResult."""
        entry = self.models.find(req.pipeline, req.model_id)
        if entry is None or entry.state != "ready":
            raise ModelNotLoaded(f"this worker does not serve {req.pipeline} {req.model_id!r} now")
        if req.deadline and time.time() > req.deadline:
            raise DeadlineExceeded("the job's deadline passed before it started")
        try:
            ai.params(req.pipeline, dict(req.params))
        except msgspec.ValidationError as exc:
            raise BadInput(f"bad {req.pipeline} request: {exc}") from None
        if entry.in_use >= entry.spec.capacity:
            raise Busy(f"{req.pipeline} {req.model_id} is at its capacity of {entry.spec.capacity}")
        entry.in_use += 1
        metrics.IN_USE.labels(req.pipeline, req.model_id).set(entry.in_use)
        started = time.monotonic()
        held = True

        def release() -> None:  # before the JobResult goes out: the slot is free once the answer is
            nonlocal held
            if held:
                held = False
                entry.in_use -= 1
                metrics.IN_USE.labels(req.pipeline, req.model_id).set(entry.in_use)

        try:
            body = await self._body(req)
            request = json.dumps(with_audio_limit(req.pipeline, dict(req.params), req.max_units)).encode()
            if req.pipeline in DECOUPLED:
                async for item in self._llm(req, request):
                    if isinstance(item, JobResult):
                        release()
                    yield item
                return
            # one instance batching up to capacity: a burst goes in whole; an instance per slot: nothing to gather
            turn = self._gather(entry.spec.name, entry.spec.capacity).turn() if req.pipeline in BATCHING else nullcontext()
            async with turn:
                response, error = await self.triton.infer(entry.spec.name, request, body)
            if error:
                problem = json.loads(error)
                raise from_code(problem.get("code", "runner_failed"), problem.get("message", ""))
            data, outputs, units = await self._media(req.job_id, response)
            result = JobResult(job_id=req.job_id, data=data, outputs=outputs, units=units,
                               seconds=time.monotonic() - started)
            release()
            yield result
        finally:
            release()

    def _gather(self, name: str, capacity: int) -> Gather:
        key = (name, capacity)
        gather = self._gathers.get(key)
        if gather is None:
            gather = self._gathers[key] = Gather(capacity, max_wait=self.gather_ms / 1000)
        return gather

    async def _llm(self, req: JobRequest, request: bytes) -> Any:
        entry = self.models.find(req.pipeline, req.model_id)
        assert entry is not None
        stream_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        text: list[str] = []
        usage: dict[str, Any] = {}
        async for chunk in self.triton.stream(entry.spec.name, request):
            if chunk.get("error"):
                raise from_code(chunk["error"].get("code", "runner_failed"), chunk["error"].get("message", ""))
            if chunk.get("done"):
                usage = chunk
                break
            text.append(chunk["text"])
            if req.stream:
                event = ai.LLMResponse(
                    id=stream_id, model=req.model_id, created=created,
                    usage=ai.LLMTokenUsage(prompt_tokens=0, completion_tokens=len(text), total_tokens=len(text)),
                    choices=(ai.LLMChoice(index=0, delta=ai.LLMMessage(role="assistant", content=chunk["text"])),),
                )
                yield msgspec.json.encode(event).decode()
        prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        totals = ai.LLMTokenUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        if req.stream:  # ai-runner's stream ends with the finish reason and usage, then [DONE]
            last = ai.LLMResponse(
                id=stream_id, model=req.model_id, created=created, usage=totals,
                choices=(ai.LLMChoice(index=0, finish_reason=str(usage.get("finish_reason", "stop")),
                                      delta=ai.LLMMessage(role="assistant", content="")),),
            )
            yield msgspec.json.encode(last).decode()
            yield "[DONE]"
        whole = ai.LLMResponse(
            id=stream_id, model=req.model_id, created=created,
            usage=totals,
            choices=(ai.LLMChoice(index=0, finish_reason=str(usage.get("finish_reason", "stop")),
                                  message=ai.LLMMessage(role="assistant", content="".join(text))),),
        )
        yield JobResult(job_id=req.job_id, data=msgspec.json.encode(whole))

    async def _body(self, req: JobRequest) -> bytes:
        if req.body_ref is None:
            return req.body
        if self.bodies is None:
            raise BodyMissing("this worker has no body store")
        try:
            result = await asyncio.wait_for(self.bodies.get(req.body_ref.name), timeout=30)
        except Exception as exc:  # noqa: BLE001 - expired, deleted, store down: the same to the caller
            raise BodyMissing(f"body {req.body_ref.name} could not be read: {type(exc).__name__}") from None
        data = result.data or b""
        if req.body_ref.sha256 and hashlib.sha256(data).hexdigest() != req.body_ref.sha256:
            raise BodyMissing(f"body {req.body_ref.name} does not match its digest")
        return data

    async def _media(self, job_id: str, response: bytes) -> tuple[bytes, tuple[Output, ...], int]:
        """The runner's JSON with each ``data:`` media URL moved into a result file, and its ``baton`` units.

        A file's ``url`` becomes its name (``image-0.png``, ``video-0.mp4``...), which the negotiator
        replaces by a ``data:`` URL or its ``/stream`` URL, as go-livepeer does; the same URL twice is
        one file. Files go inline up to half ``INLINE_BODY_MAX`` in all, the rest through the body store.
        """
        if b'"data:' not in response and b'"baton"' not in response:
            return response, (), 0
        doc = json.loads(response)
        extra = doc.pop("baton", None) if isinstance(doc, dict) else None
        units = int(extra.get("units", 0)) if isinstance(extra, dict) else 0
        files: dict[str, tuple[str, str, bytes]] = {}  # data URL -> (name, content type, bytes)

        def lift(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: (lift_url(v) if k == "url" and isinstance(v, str) else lift(v)) for k, v in node.items()}
            if isinstance(node, list):
                return [lift(v) for v in node]
            return node

        def lift_url(url: str) -> str:
            if not url.startswith("data:") or ";base64," not in url:
                return url
            if url not in files:
                content_type = url[5:url.index(";")]
                kind, _, subtype = content_type.partition("/")
                name = f"{kind}-{len(files)}.{MEDIA_EXT.get(content_type, subtype or 'bin')}"
                files[url] = (name, content_type, base64.b64decode(url.split(",", 1)[1]))
            return files[url][0]

        doc = lift(doc)
        outputs: list[Output] = []
        inline = 0
        for n, (name, content_type, data) in enumerate(files.values()):
            if self.bodies is None or inline + len(data) <= INLINE_BODY_MAX // 2:
                inline += len(data)
                outputs.append(Output(name=name, content_type=content_type, data=data))
                continue
            ref = BodyRef(name=f"{job_id}/out/{n}", size=len(data), content_type=content_type,
                          sha256=hashlib.sha256(data).hexdigest())
            await self.bodies.put(ref.name, data)
            outputs.append(Output(name=name, content_type=content_type, ref=ref))
        return json.dumps(doc).encode(), tuple(outputs), units

    def _result_too_big(self, result: JobResult) -> bool:
        return len(result.data) > INLINE_BODY_MAX

    async def _store_result(self, result: JobResult) -> JobResult:
        if self.bodies is None:
            return result
        name = f"{result.job_id}/out/response"
        await self.bodies.put(name, result.data)
        ref = BodyRef(name=name, size=len(result.data), content_type=result.content_type,
                      sha256=hashlib.sha256(result.data).hexdigest())
        return JobResult(job_id=result.job_id, content_type=result.content_type,
                         outputs=(*result.outputs,
                                  Output(name="response.json", content_type=result.content_type, ref=ref)),
                         units=result.units, seconds=result.seconds)
