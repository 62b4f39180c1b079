"""Transcode service: its ffmpeg check, against the real ffmpeg."""

from __future__ import annotations

import shutil

import pytest

from baton_transcode.ffmpeg import FfmpegHealth


def test_ffmpeg_is_installed_by_the_test_command() -> None:
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "./dev test installs ffmpeg"


async def test_cpu_check_reports_the_ffmpeg_version() -> None:
    detail = await FfmpegHealth("ffmpeg", "").check()
    assert detail.startswith("ffmpeg version") and detail.endswith("; CPU")


async def test_gpu_check_encodes_for_real() -> None:
    """A configured GPU is usable only if NVENC really encodes on it, whatever ffmpeg lists."""
    if shutil.which("nvidia-smi") is None:  # no NVIDIA driver: the encode must fail, with ffmpeg's reason
        with pytest.raises(RuntimeError, match="NVENC test encode on GPU 0 failed"):
            await FfmpegHealth("ffmpeg", "0").check()
    else:  # a driver: NVENC works on GPU 0, or the check says why not (an H100/H200 has no NVENC at all)
        try:
            assert (await FfmpegHealth("ffmpeg", "0").check()).endswith("; NVENC on GPU 0")
        except RuntimeError as exc:
            assert "NVENC test encode on GPU 0 failed" in str(exc)


async def test_a_missing_binary_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="/opt/nowhere/ffmpeg not found"):
        await FfmpegHealth("/opt/nowhere/ffmpeg", "").check()
