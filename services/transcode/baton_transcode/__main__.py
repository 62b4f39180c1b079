"""Composition root of the transcode service: ffmpeg transcoding, NVENC when a GPU is set.

For now it reports whether ffmpeg (and NVENC, with a GPU) is usable as a
detail of its heartbeat.
"""

from __future__ import annotations

from baton_common.runtime import ServiceBase, ServiceContext, run_service

from .config import TranscodeSettings
from .ffmpeg import FfmpegHealth

__all__ = ["Transcode", "main"]


class Transcode(ServiceBase[TranscodeSettings]):
    name = "transcode"

    async def start(self, ctx: ServiceContext) -> None:
        ctx.probe("ffmpeg", FfmpegHealth(self.settings.ffmpeg, self.settings.gpu).check, interval=30.0)


def main() -> None:
    run_service("transcode", TranscodeSettings, Transcode)


if __name__ == "__main__":
    main()
