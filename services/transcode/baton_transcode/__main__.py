"""Composition root of the transcode service: one worker per GPU (``BATON_TRANSCODE_GPU``) or on the CPU.

At start it finds out what the hardware really does (:meth:`Ffmpeg.detect`),
binds ``baton-workers`` and ``baton-bodies``, serves jobs on its own subject
``baton.jobs.transcode.<worker_id>`` and keeps its advert current.
"""

from __future__ import annotations

import asyncio
import os
import shutil

from baton_common import __version__
from baton_common.config import ConfigError
from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas.jobs import BODIES, JobRequest, job_subject
from baton_common.schemas.workers import WORKERS

from .bus import Advertiser, ObjectBodies
from .config import TranscodeSettings
from .domain import Capabilities
from .ffmpeg import Ffmpeg, nvml_gpu
from .worker import TranscodeWorker

__all__ = ["Transcode", "main"]


class Transcode(ServiceBase[TranscodeSettings]):
    name = "transcode"

    def __init__(self, settings: TranscodeSettings) -> None:
        super().__init__(settings)
        if shutil.which(settings.ffmpeg) is None:
            raise ConfigError(f"BATON_TRANSCODE_FFMPEG: {settings.ffmpeg!r} is not an executable (not on PATH)")
        if settings.work_dir and not os.access(settings.work_dir, os.W_OK):
            raise ConfigError(f"BATON_TRANSCODE_WORK_DIR: {settings.work_dir!r} is not a writable directory")
        self.ffmpeg = Ffmpeg(settings.ffmpeg)
        self.caps = Capabilities()
        self.worker: TranscodeWorker | None = None
        self.advertiser: Advertiser | None = None
        self._advert_task: asyncio.Task[None] | None = None

    async def start(self, ctx: ServiceContext) -> None:
        s = self.settings
        worker_id = s.worker_id or ctx.instance
        version = await self.ffmpeg.version()
        self.caps = await self.ffmpeg.detect(s.gpu)
        kv = await ctx.bus.bind(WORKERS)
        store = await ctx.bus.bind(BODIES)
        advertiser = Advertiser(
            kv, worker_id=worker_id, capacity=s.concurrency, in_use=lambda: worker.in_use, caps=self.caps,
            gpu=nvml_gpu(s.gpu) if s.gpu else None, version=__version__,
        )
        worker = TranscodeWorker(
            worker_id=worker_id, encoder=self.ffmpeg, bodies=ObjectBodies(store), caps=self.caps,
            capacity=s.concurrency, segment_timeout=s.segment_timeout, preset=s.x264_preset, work_dir=s.work_dir,
            max_pixel_rate=s.max_pixel_rate,
            on_change=advertiser.changed,
        )
        self.worker, self.advertiser = worker, advertiser
        sub = await ctx.bus.serve(job_subject("transcode", worker_id), JobRequest, worker.handle)
        await advertiser.put()
        self._advert_task = asyncio.create_task(advertiser.run(sub), name="transcode-advert")
        summary = self._summary(version)
        ctx.probe("ffmpeg", lambda: self._check(summary), interval=30.0)
        ctx.log.info("transcode worker serving", extra={"worker_id": worker_id, "subject": job_subject("transcode", worker_id),
                                                         "capacity": s.concurrency, "hardware": summary})

    def _summary(self, version: str) -> str:
        c = self.caps
        if not c.gpu:
            return f"{version}; CPU"
        enc = ",".join(c.encoders) or "no NVENC (CPU encode)"
        dec = ",".join(c.decoders) or "no NVDEC (CPU decode)"
        return f"{version}; GPU {c.gpu} {c.gpu_name}: {enc}; {dec}"

    async def _check(self, summary: str) -> str:
        await self.ffmpeg.version()  # the binary still runs
        return summary

    async def stop(self) -> None:
        if self._advert_task is not None:
            self._advert_task.cancel()
        if self.advertiser is not None:
            await self.advertiser.withdraw()


def main() -> None:
    run_service("transcode", TranscodeSettings, Transcode)


if __name__ == "__main__":
    main()
