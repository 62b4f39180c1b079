"""The ffmpeg adapter and the service's start-up checks, against the real ffmpeg."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from baton_common.config import ConfigError, load_settings
from baton_transcode.__main__ import Transcode
from baton_transcode.config import TranscodeSettings
from baton_transcode.ffmpeg import Ffmpeg
from tests.helpers import service_env


def test_ffmpeg_is_installed_by_the_test_command() -> None:
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "./dev test installs ffmpeg"


async def test_version_and_a_cpu_worker_tries_no_gpu() -> None:
    ff = Ffmpeg("ffmpeg")
    assert (await ff.version()).startswith("ffmpeg version")
    caps = await ff.detect("")
    assert (caps.gpu, caps.encoders, caps.decoders) == ("", (), ())


async def test_gpu_detection_encodes_for_real() -> None:
    """A configured GPU counts only for what NVENC/NVDEC really did on it, whatever ffmpeg lists."""
    caps = await Ffmpeg("ffmpeg").detect("0")
    if shutil.which("nvidia-smi") is None:  # no driver: every attempt failed, with ffmpeg's reason
        assert caps.encoders == () and caps.decoders == ()
        assert any(n.startswith("h264_nvenc unavailable on GPU 0: ") and len(n) > 35 for n in caps.notes), caps.notes
        assert any(n.startswith("NVDEC h264 unavailable on GPU 0: ") for n in caps.notes), caps.notes
    else:  # a driver: an H100/H200 decodes on NVDEC with no NVENC; other GPUs do both
        assert set(caps.encoders) <= {"h264_nvenc", "hevc_nvenc"}
        if caps.decoders and not caps.encoders:
            assert any("decodes on NVDEC but has no NVENC" in n for n in caps.notes)


def test_a_missing_binary_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="/opt/nowhere/ffmpeg not found"):
        Ffmpeg("/opt/nowhere/ffmpeg")


def test_a_missing_ffmpeg_stops_the_service_with_exit_2_naming_the_setting() -> None:
    env = service_env("nats://127.0.0.1:1", BATON_TRANSCODE_FFMPEG="/opt/nowhere/ffmpeg",
                      PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", "baton_transcode"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "BATON_TRANSCODE_FFMPEG" in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("env", "said"),
    [({"BATON_TRANSCODE_CONCURRENCY": "0"}, "BATON_TRANSCODE_CONCURRENCY"),
     ({"BATON_TRANSCODE_GPU": "all"}, "BATON_TRANSCODE_GPU"),
     ({"BATON_TRANSCODE_X264_PRESET": "warp"}, "BATON_TRANSCODE_X264_PRESET"),
     ({"BATON_TRANSCODE_WORK_DIR": "/opt/nowhere"}, "BATON_TRANSCODE_WORK_DIR"),
     ({"BATON_TRANSCODE_MAX_PIXEL_RATE": "0"}, "BATON_TRANSCODE_MAX_PIXEL_RATE")],
)
def test_bad_settings_are_refused_at_start_naming_them(env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        Transcode(load_settings(TranscodeSettings, "transcode", env=env, argv=[]))


def test_go_livepeers_nvidia_flag_picks_the_gpu() -> None:
    assert load_settings(TranscodeSettings, "transcode", env={}, argv=["-nvidia=1"]).gpu == "1"
