"""One transcode worker: takes a segment job, runs its ladder in one ffmpeg process, counts the pixels.

The worker holds ``capacity`` slots. A job it has no free slot for is refused
at once as ``busy`` (retryable: the negotiator picks another worker), a job
whose profiles cannot be made as ``bad_input`` naming the profile, before
anything runs. A segment that does not decode is ``bad_input`` too; the
worker carries on with the next job. Every change of the slots in use calls
``on_change`` so the advert is put at once.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from baton_common.schemas.jobs import INLINE_BODY_MAX, JobError, JobRequest, JobResult, Output
from baton_common.schemas.transcode import TRANSCODE_PIPELINE, TranscodeParams

from . import metrics
from .domain import (
    MAX_RENDITION_BYTES,
    Capabilities,
    Rendition,
    check_budget,
    frame_budget,
    metric_label,
    plan_accel,
    plan_renditions,
    segment_timeout,
    source_codec,
)
from .errors import (
    INVALID_VIDEO,
    OUTPUT_FRAMES,
    BadSegment,
    DeadlineExceeded,
    EncoderFailed,
    NoFreeSlot,
    NvencSessionLimit,
    TranscodeError,
    WrongJob,
)
from .ladder import build_argv
from .ports import Bodies, Encoder
from .stats import classify_failure, encoded_video, failure_line, input_duration

__all__ = ["TranscodeWorker", "default_work_dir"]

log = logging.getLogger("baton.transcode")


def default_work_dir() -> str:
    """/dev/shm when it is writable (segments never touch a disk), else the system temp directory."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


class TranscodeWorker:
    def __init__(
        self,
        *,
        worker_id: str,
        encoder: Encoder,
        bodies: Bodies,
        caps: Capabilities,
        capacity: int,
        segment_timeout: float,
        preset: str = "veryfast",
        work_dir: str = "",
        max_pixel_rate: float = 1e9,
        max_rendition_bytes: int = MAX_RENDITION_BYTES,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.worker_id = worker_id
        self.encoder, self.bodies, self.caps = encoder, bodies, caps
        self.capacity = capacity
        self.min_timeout = segment_timeout
        self.preset = preset
        self.max_pixel_rate = max_pixel_rate
        self.max_rendition_bytes = max_rendition_bytes
        self.work_dir = work_dir or default_work_dir()
        self.on_change = on_change
        self.clock = clock
        self.in_use = 0
        metrics.CAPACITY.set(capacity)
        metrics.IN_USE.set(0)

    async def handle(self, req: JobRequest) -> JobResult | JobError:
        """The reply to one job: a JobResult, or a JobError with its machine-readable code."""
        try:
            return await self._handle(req)
        except TranscodeError as exc:
            metrics.FAILED.labels(exc.code).inc()
            log.info("segment refused" if exc.retryable else "segment failed",
                     extra={"job_id": req.job_id, "code": exc.code, "error": exc.message})
            return JobError(job_id=req.job_id, code=exc.code, message=exc.message, retryable=exc.retryable)

    def _take_slot(self) -> None:
        if self.in_use >= self.capacity:
            raise NoFreeSlot(f"OrchestratorBusy: all {self.capacity} transcode slots of worker {self.worker_id} are in use")
        self.in_use += 1
        metrics.IN_USE.set(self.in_use)
        self.on_change()

    def _free_slot(self) -> None:
        self.in_use -= 1
        metrics.IN_USE.set(self.in_use)
        self.on_change()

    async def _handle(self, req: JobRequest) -> JobResult:
        if req.kind != "transcode" or req.pipeline != TRANSCODE_PIPELINE:
            raise WrongJob(f"this worker transcodes segments (kind transcode, pipeline {TRANSCODE_PIPELINE!r}); "
                           f"got kind {req.kind!r}, pipeline {req.pipeline!r}")
        try:
            params = msgspec.convert(req.params, TranscodeParams)
        except msgspec.ValidationError as exc:
            raise WrongJob(f"bad transcode params: {exc}") from None
        renditions = plan_renditions(params.profiles)
        check_budget(renditions, params.duration_ms, self.max_pixel_rate)
        left = req.deadline - self.clock()
        if left <= 0:
            raise DeadlineExceeded(f"the job's deadline passed {-left:.1f} s before it reached worker {self.worker_id}")
        self._take_slot()
        try:
            body = req.body
            if req.body_ref is not None:
                body = await self.bodies.get(req.body_ref)
            if not body:
                raise BadSegment("the segment is empty")
            timeout = segment_timeout(self.min_timeout, params.duration_ms, req.deadline - self.clock())
            return await self._transcode(req, params, renditions, body, timeout)
        finally:
            self._free_slot()

    async def _transcode(
        self, req: JobRequest, params: TranscodeParams, renditions: tuple[Rendition, ...], body: bytes, timeout: float
    ) -> JobResult:
        accel = plan_accel(renditions, self.caps, source_codec(body))
        with tempfile.TemporaryDirectory(prefix="baton-seg-", dir=self.work_dir) as tmp:
            source = Path(tmp) / "in"
            source.write_bytes(body)
            paths = [str(Path(tmp) / f"{r.index}.{r.extension}") for r in renditions]
            budgets = [frame_budget(r, params.duration_ms) for r in renditions]
            argv = build_argv(renditions, accel, str(source), paths, preset=self.preset, frames=budgets,
                              max_bytes=self.max_rendition_bytes)
            done = await self.encoder.run(argv, timeout)
            if done.timed_out:
                raise DeadlineExceeded(f"segment {params.seq} took longer than its {timeout:.1f} s timeout")
            if done.returncode != 0:
                self._raise_failure(done.log.replace(str(source), "segment").replace(tmp + "/", ""), accel.uses_nvenc)
            streams = encoded_video(done.log)
            # Every rendition is checked before any is stored: a refused segment leaves nothing in baton-bodies.
            checked = []
            for r, path, budget in zip(renditions, paths, budgets, strict=True):
                stream = streams.get(r.index)
                if stream is None or stream.frames == 0:
                    log.info("no video frames", extra={"job_id": req.job_id, "rendition": r.name})
                    raise BadSegment(INVALID_VIDEO)
                if budget is not None and stream.frames > budget:
                    log.info("rendition over its frame budget", extra={
                        "job_id": req.job_id, "rendition": r.name, "budget": budget, "duration_ms": params.duration_ms})
                    raise BadSegment(OUTPUT_FRAMES)
                if not Path(path).is_file():
                    raise EncoderFailed(f"ffmpeg wrote no file for rendition {r.name!r}")
                if Path(path).stat().st_size >= self.max_rendition_bytes:
                    raise BadSegment(f"rendition {r.name!r} reached the {self.max_rendition_bytes / 2**20:g} MiB "
                                     f"limit of one rendition")
                checked.append((r, path, stream))
            outputs: list[Output] = []
            total = 0
            inline_left = INLINE_BODY_MAX  # for the whole reply: NATS keeps its 1 MB max payload
            for r, path, stream in checked:
                data = Path(path).read_bytes()
                if len(data) <= inline_left:
                    inline_left -= len(data)
                    outputs.append(Output(name=r.name, content_type=r.content_type, data=data, pixels=stream.pixels))
                else:
                    ref = await self.bodies.put(f"{req.job_id}/out/{r.index}", data, r.content_type)
                    outputs.append(Output(name=r.name, content_type=r.content_type, ref=ref, pixels=stream.pixels))
                total += stream.pixels
                if done.seconds > 0 and stream.media_seconds:
                    metrics.REALTIME_FACTOR.labels(metric_label(r)).observe(stream.media_seconds / done.seconds)
        duration = input_duration(done.log) or params.duration_ms / 1000
        metrics.SEGMENTS.inc()
        metrics.PIXELS.inc(total / 1e6)
        metrics.TRANSCODE_TIME.observe(done.seconds)
        if duration > 0:
            metrics.TRANSCODE_SCORE.observe(done.seconds / duration)
        log.info("segment transcoded", extra={
            "job_id": req.job_id, "seq": params.seq, "renditions": len(outputs), "pixels": total,
            "seconds": round(done.seconds, 3), "decode": accel.decode, "encoders": list(accel.encoders),
        })
        return JobResult(job_id=req.job_id, outputs=tuple(outputs), units=total, seconds=done.seconds)

    @staticmethod
    def _raise_failure(log_text: str, nvenc: bool) -> None:
        kind = classify_failure(log_text, nvenc=nvenc)
        if kind == "session_limit":
            raise NvencSessionLimit("OrchestratorBusy: the GPU's NVENC session limit is reached")
        if kind == "no_video":
            raise BadSegment(INVALID_VIDEO)
        if kind == "bad_format":
            raise BadSegment("the segment is not a media file this worker reads (MPEG-TS, MP4/MOV, Matroska/WebM, FLV)")
        why = failure_line(log_text)
        if kind == "bad_input":
            raise BadSegment(f"the segment does not decode: {why}")
        raise EncoderFailed(f"ffmpeg failed: {why}")
