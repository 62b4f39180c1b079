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


async def test_a_gpu_without_nvenc_fails_the_check_with_ffmpegs_reason() -> None:
    """No GPU here: a configured GPU must not be reported usable just because ffmpeg lists h264_nvenc."""
    with pytest.raises(RuntimeError, match="NVENC test encode on GPU 0 failed"):
        await FfmpegHealth("ffmpeg", "0").check()


async def test_a_missing_binary_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="/opt/nowhere/ffmpeg not found"):
        await FfmpegHealth("/opt/nowhere/ffmpeg", "").check()
