"""Settings of the transcode service (environment `BATON_TRANSCODE_<NAME>`)."""

from __future__ import annotations

from typing import Annotated

from baton_common.config import CommonSettings, setting

__all__ = ["TranscodeSettings"]


class TranscodeSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7939
    ffmpeg: Annotated[str, setting("The ffmpeg binary (a name on PATH or a path).")] = "ffmpeg"
    gpu: Annotated[
        str, setting("CUDA device index for NVENC/NVDEC as this process sees it (one transcode instance per GPU); "
                    "empty transcodes on the CPU.", flag="nvidia")
    ] = ""
