"""Adapter to the ffmpeg binary: runs one segment's command, and finds out what the hardware really does.

Listing encoders proves nothing (Debian's ffmpeg lists ``h264_nvenc`` on any
machine), so :meth:`Ffmpeg.detect` opens each one: it encodes a few frames
with NVENC, decodes a few with NVDEC into GPU memory, and, where a render
node exists, encodes with VAAPI and QSV. NVML (nvidia-ml-py), when the driver
is there, names the GPU and its memory for the advert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from baton_common.schemas.workers import Gpu

from .domain import Capabilities

__all__ = ["Completed", "Ffmpeg", "nvml_gpu"]

log = logging.getLogger("baton.transcode.ffmpeg")

_TEST_SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=256x144:rate=30:duration=0.2"]


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    log: str
    """ffmpeg's stderr."""
    seconds: float
    timed_out: bool = False


class Ffmpeg:
    """One ffmpeg binary; every call is a child process, killed when it outlives its timeout."""

    def __init__(self, binary: str = "ffmpeg") -> None:
        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError(f"{binary} not found")
        self.binary = path

    async def run(self, argv: list[str], timeout: float) -> Completed:
        """Run ``argv`` (its first item is replaced by this binary) for at most ``timeout`` seconds.

        The command runs in its own process group, and a run past ``timeout`` (or cancelled) has the whole
        group killed: nothing it started outlives it or holds its stderr open.
        """
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            self.binary, *argv[1:], stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=max(0.01, timeout))
        except TimeoutError:
            _kill_group(proc.pid)
            _, err = await proc.communicate()
            return Completed(-9, err.decode(errors="replace"), time.monotonic() - start, timed_out=True)
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            await proc.wait()
            raise
        return Completed(proc.returncode or 0, err.decode(errors="replace"), time.monotonic() - start)

    async def _ok(self, *args: str, timeout: float = 20.0) -> tuple[bool, str]:
        done = await self.run([self.binary, "-hide_banner", "-nostdin", "-loglevel", "error", *args], timeout)
        last = [ln for ln in done.log.strip().splitlines() if ln.strip()][-1:] or ["timed out" if done.timed_out else ""]
        return done.returncode == 0, last[0][:200]

    async def version(self) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-hide_banner", "-version", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10.0)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.binary} -version failed (exit {proc.returncode})")
        return out.decode(errors="replace").splitlines()[0]

    async def detect(self, gpu: str) -> Capabilities:
        """What works on CUDA device ``gpu`` (nothing is tried without one), VAAPI and QSV noted where present."""
        notes: list[str] = []
        nvenc: set[str] = set()
        nvdec: set[str] = set()
        name = ""
        if gpu:
            info = nvml_gpu(gpu)
            name = info.name if info else ""
            for codec, encoder in (("h264", "h264_nvenc"), ("h265", "hevc_nvenc")):
                ok, why = await self._ok(*_TEST_SOURCE, "-c:v", encoder, "-gpu", gpu, "-f", "null", "-")
                if ok:
                    nvenc.add(codec)
                else:
                    notes.append(f"{encoder} unavailable on GPU {gpu}: {why}")
            with tempfile.TemporaryDirectory(prefix="baton-probe-") as tmp:
                samples = (("h264", ["-c:v", "libx264"], "h264"),
                           ("h265", ["-c:v", "libx265", "-x265-params", "log-level=none"], "hevc"))
                for codec, encode, ext in samples:
                    sample = Path(tmp) / f"s.{ext}"
                    made, _ = await self._ok(*_TEST_SOURCE, *encode, "-f", ext, "-y", str(sample))
                    if not made:
                        continue
                    ok, why = await self._ok("-hwaccel", "cuda", "-hwaccel_device", gpu, "-hwaccel_output_format", "cuda",
                                             "-i", str(sample), "-vf", "hwdownload,format=nv12", "-f", "null", "-")
                    if ok:
                        nvdec.add(codec)
                    else:
                        notes.append(f"NVDEC {codec} unavailable on GPU {gpu}: {why}")
            if nvdec and not nvenc:
                notes.append(f"GPU {gpu} decodes on NVDEC but has no NVENC: encoding on the CPU")
            elif not nvenc:
                notes.append(f"no NVENC on GPU {gpu}: encoding on the CPU")
        render = "/dev/dri/renderD128"
        if os.path.exists(render):
            ok, why = await self._ok("-vaapi_device", render, *_TEST_SOURCE, "-vf", "format=nv12,hwupload",
                                     "-c:v", "h264_vaapi", "-f", "null", "-")
            notes.append("VAAPI h264 encodes (not used for ladders yet)" if ok else f"VAAPI unavailable: {why}")
            ok, why = await self._ok("-init_hw_device", "qsv=hw", *_TEST_SOURCE, "-vf", "format=nv12",
                                     "-c:v", "h264_qsv", "-f", "null", "-")
            notes.append("QSV h264 encodes (not used for ladders yet)" if ok else f"QSV unavailable: {why}")
        caps = Capabilities(gpu=gpu, nvenc=frozenset(nvenc), nvdec=frozenset(nvdec), gpu_name=name, notes=tuple(notes))
        log.info("hardware detected", extra={"gpu": gpu, "nvenc": sorted(nvenc), "nvdec": sorted(nvdec), "notes": notes})
        return caps


def _kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (the child was started with ``start_new_session``)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def nvml_gpu(index: str) -> Gpu | None:
    """The GPU as NVML sees it (go-livepeer's GPUComputeInfo fields), or None without a driver or nvidia-ml-py."""
    try:
        import pynvml  # nvidia-ml-py: loads libnvidia-ml.so only here

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(index))
        name = pynvml.nvmlDeviceGetName(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        return Gpu(id=index, name=name.decode() if isinstance(name, bytes) else str(name), major=major, minor=minor,
                   memory_total=int(memory.total), memory_free=int(memory.free))
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
