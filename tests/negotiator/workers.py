"""Echo and failing workers, written against the contracts (schemas/workers.py, schemas/jobs.py) only.

Each puts its WorkerAdvert in ``baton-workers`` every second and answers
JobRequests on its own subject. ``mode`` picks the behaviour: ``echo`` (the
result echoes the request), ``fail`` (runner_failed), ``busy`` (refuses, no
slot), ``stream-fail`` (an LLM stream that breaks off after two tokens),
``hang`` (takes the job, never answers: stop() then plays a worker killed
mid-job, its advert going stale), ``slow`` (answers after 0.5 s), ``store``
(a transcode worker that puts its renditions in ``baton-bodies`` as
``<job_id>/out/<n>``, as the real one does with large ones), ``store-bad``
(the same, each reference naming a digest its bytes do not have).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time

import msgspec
import nats
from nats.js.kv import KeyValue

from baton_common.schemas import decode, encode
from baton_common.schemas.jobs import BodyRef, JobChunk, JobError, JobRequest, JobResult, Output, job_subject
from baton_common.schemas.workers import ModelState, WorkerAdvert, advert_key

PNG_1x1 = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


class TestWorker:
    __test__ = False

    def __init__(self, nc: nats.NATS, kv: KeyValue, worker_id: str, *, kind: str = "inference",
                 models: tuple[tuple[str, str], ...] = (("text-to-image", "echo-model"), ("llm", "echo-llm"),
                                                      ("image-to-image", "echo-model")),
                 capacity: int = 2, mode: str = "echo") -> None:
        self.nc, self.kv, self.worker_id, self.kind = nc, kv, worker_id, kind
        self.models, self.capacity, self.mode = models, capacity, mode
        self.jobs: list[JobRequest] = []
        self.in_use = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._sub = None

    def advert(self) -> WorkerAdvert:
        return WorkerAdvert(worker_id=self.worker_id, kind=self.kind,  # type: ignore[arg-type]
                            job_subject=job_subject(self.kind, self.worker_id), at=time.time(),  # type: ignore[arg-type]
                            models=tuple(ModelState(pipeline=p, model_id=m, warm=True, capacity=self.capacity,
                                                    in_use=self.in_use) for p, m in self.models))

    async def start(self) -> TestWorker:
        self._sub = await self.nc.subscribe(job_subject(self.kind, self.worker_id), cb=self._on_job)  # type: ignore[arg-type]
        await self.kv.put(advert_key(self.kind, self.worker_id), encode(self.advert()))  # type: ignore[arg-type]
        self._tasks.append(asyncio.create_task(self._advertise()))
        return self

    async def _advertise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.kv.put(advert_key(self.kind, self.worker_id), encode(self.advert()))  # type: ignore[arg-type]

    async def stop(self, *, delete: bool = True) -> None:
        """Stop advertising and taking jobs; ``delete=False`` plays a crash (the advert just goes stale)."""
        for task in self._tasks:
            task.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if delete:
            with contextlib.suppress(Exception):
                await self.kv.delete(advert_key(self.kind, self.worker_id))  # type: ignore[arg-type]

    async def _on_job(self, msg: nats.aio.msg.Msg) -> None:
        self._tasks.append(asyncio.create_task(self._handle(msg)))

    async def _reply(self, msg: nats.aio.msg.Msg, reply: msgspec.Struct) -> None:
        await self.nc.publish(msg.reply, encode(reply))

    async def _handle(self, msg: nats.aio.msg.Msg) -> None:
        job = decode(msg.data, JobRequest)
        self.jobs.append(job)
        if self.mode == "busy" or self.in_use >= self.capacity:
            await self._reply(msg, JobError(job_id=job.job_id, code="busy", retryable=True))
            return
        if self.mode == "stream-fail":  # two tokens of an LLM stream, then the runner dies
            for seq, word in enumerate(("half", "way")):
                chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": word}}]}
                await self._reply(msg, JobChunk(job_id=job.job_id, seq=seq, data=json.dumps(chunk)))
            await asyncio.sleep(0.05)
            await self._reply(msg, JobError(job_id=job.job_id, code="runner_failed", message="the runner crashed"))
            return
        if self.mode == "fail":
            await self._reply(msg, JobError(job_id=job.job_id, code="runner_failed", message="the runner crashed"))
            return
        self.in_use += 1
        try:
            if self.mode == "hang":
                await asyncio.sleep(3600)
            if self.mode == "slow":
                await asyncio.sleep(0.5)
            await self._reply(msg, await self._result(msg, job))
        finally:
            self.in_use -= 1

    async def _result(self, msg: nats.aio.msg.Msg, job: JobRequest) -> JobResult:
        if job.pipeline == "transcode":
            body = job.body
            outputs = tuple(Output(name=p["name"], content_type="video/mp2t", data=body + p["name"].encode(),
                                   pixels=p["width"] * p["height"] * 2) for p in job.params["profiles"])
            if self.mode in ("store", "store-bad"):
                store = await self.nc.jetstream().object_store("baton-bodies")
                stored = []
                for n, o in enumerate(outputs):
                    name = f"{job.job_id}/out/{n}"
                    await store.put(name, o.data)
                    digest = hashlib.sha256(o.data + (b"x" if self.mode == "store-bad" else b"")).hexdigest()
                    ref = BodyRef(name=name, size=len(o.data), content_type=o.content_type, sha256=digest)
                    stored.append(Output(name=o.name, content_type=o.content_type, ref=ref, pixels=o.pixels))
                outputs = tuple(stored)
            return JobResult(job_id=job.job_id, outputs=outputs)
        if job.pipeline == "llm":
            text = job.params["messages"][-1]["content"]
            if job.stream:
                for seq, word in enumerate(text.split()):
                    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": word}}]}
                    await self._reply(msg, JobChunk(job_id=job.job_id, seq=seq, data=json.dumps(chunk)))
                await self._reply(msg, JobChunk(job_id=job.job_id, seq=len(text.split()), data="[DONE]"))
                return JobResult(job_id=job.job_id, units=len(text.split()))
            doc = {"id": job.job_id, "model": job.model_id, "created": int(time.time()),
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text}}]}
            return JobResult(job_id=job.job_id, data=json.dumps(doc).encode())
        body = job.body
        if job.body_ref is not None:  # a large input: read it from baton-bodies and check its digest
            store = await self.nc.jetstream().object_store("baton-bodies")
            body = (await store.get(job.body_ref.name)).data or b""
            assert hashlib.sha256(body).hexdigest() == job.body_ref.sha256
        count = job.params.get("num_images_per_prompt", 1)
        doc = {"images": [{"url": f"out{n}.png", "seed": n, "nsfw": False} for n in range(count)],
               "echo": job.params, "input_bytes": len(body), "input_sha256": hashlib.sha256(body).hexdigest()}
        outputs = tuple(Output(name=f"out{n}.png", content_type="image/png", data=PNG_1x1) for n in range(count))
        return JobResult(job_id=job.job_id, data=json.dumps(doc).encode(), outputs=outputs)
