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
    worker_id: Annotated[
        str, setting("This worker's id in `baton-workers` and in its job subject `baton.jobs.transcode.<id>`; "
                    "empty means the instance id.")
    ] = ""
    concurrency: Annotated[
        int, setting("Segments this worker transcodes at once (its advertised capacity); a job beyond it is "
                    "refused as `busy`.", ge=1, le=256)
    ] = 2
    segment_timeout: Annotated[
        float, setting("Seconds one segment may take at least; a longer segment gets 4 × its duration, "
                      "as go-livepeer waits for a transcoder. The job's own deadline caps both.", gt=0, le=3600)
    ] = 8.0
    x264_preset: Annotated[
        str, setting("libx264/libx265 preset for CPU encodes (`ultrafast` … `veryslow`).")
    ] = "veryfast"
    max_pixel_rate: Annotated[
        float, setting("Most output pixels per second of video a segment's ladder may ask for (Σ width × height × "
                      "fps; a profile keeping the source's rate counts at 60 fps); a ladder above it is refused as "
                      "`bad_input` before anything runs. The default takes a 4K60 ladder.", gt=0)
    ] = 1e9
    work_dir: Annotated[
        str, setting("Directory for segment and rendition files while a job runs; empty = /dev/shm if writable, "
                    "else the system temp directory.")
    ] = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        presets = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
        if self.x264_preset not in presets:
            raise ValueError(f"BATON_TRANSCODE_X264_PRESET must be one of {', '.join(presets)}, got {self.x264_preset!r}")
        if self.gpu and not self.gpu.isdigit():
            raise ValueError(f"BATON_TRANSCODE_GPU must be a CUDA device index (0, 1, ...) or empty, got {self.gpu!r}")
