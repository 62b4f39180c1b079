"""Adapter to the ffmpeg binary."""

from __future__ import annotations

import asyncio
import shutil

__all__ = ["FfmpegHealth"]


class FfmpegHealth:
    """Checks that ffmpeg runs and, with a GPU, that NVENC really encodes on it.

    Listing encoders is not enough: Debian's ffmpeg lists h264_nvenc on any
    machine. So the check encodes one small frame on the GPU.
    """

    def __init__(self, binary: str, gpu: str) -> None:
        self.binary = binary
        self.gpu = gpu

    async def _run(self, *args: str, what: str = "") -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise FileNotFoundError(f"{self.binary} not found")
        proc = await asyncio.create_subprocess_exec(
            path, "-hide_banner", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{what or self.binary} failed (exit {proc.returncode}): {last[0][:200]}")
        return out.decode(errors="replace")

    async def check(self) -> str:
        version = (await self._run("-version")).splitlines()[0]
        if self.gpu:
            await self._run(
                "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=256x144:rate=30:duration=0.1",
                "-c:v", "h264_nvenc", "-gpu", self.gpu, "-f", "null", "-",
                what=f"NVENC test encode on GPU {self.gpu}",
            )
            return f"{version}; NVENC on GPU {self.gpu}"
        return f"{version}; CPU"
