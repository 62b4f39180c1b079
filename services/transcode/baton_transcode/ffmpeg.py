"""Adapter to the ffmpeg binary."""

from __future__ import annotations

import asyncio
import shutil

__all__ = ["FfmpegHealth"]


class FfmpegHealth:
    """Checks that ffmpeg runs and, with a GPU, that it has the NVENC H.264 encoder."""

    def __init__(self, binary: str, gpu: str) -> None:
        self.binary = binary
        self.gpu = gpu

    async def _run(self, *args: str) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise FileNotFoundError(f"{self.binary} not found")
        proc = await asyncio.create_subprocess_exec(
            path, "-hide_banner", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{self.binary} {' '.join(args)} exited {proc.returncode}")
        return out.decode(errors="replace")

    async def check(self) -> str:
        version = (await self._run("-version")).splitlines()[0]
        if self.gpu:
            if "h264_nvenc" not in await self._run("-encoders"):
                raise RuntimeError(f"GPU {self.gpu} configured but {self.binary} has no h264_nvenc encoder")
            return f"{version}; NVENC on GPU {self.gpu}"
        return f"{version}; CPU"
