"""The worker against the real ffmpeg and ffprobe: every profile as asked, exact pixels, bad segments, fallback.

Bodies come from a dict (the Bodies port); the object store path runs in test_worker_nats.py.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import msgspec
import pytest

from baton_common.schemas.jobs import INLINE_BODY_MAX, BodyRef, JobError, JobRequest, JobResult
from baton_common.schemas.transcode import TranscodeParams, VideoProfile
from baton_transcode.domain import Capabilities, plan_accel, plan_renditions, source_codec
from baton_transcode.errors import BodyMissing
from baton_transcode.ffmpeg import Completed, Ffmpeg
from baton_transcode.worker import TranscodeWorker
from tests.transcode.segments import Probe, make_segment, probe


class DictBodies:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def get(self, ref: BodyRef) -> bytes:
        if ref.name not in self.objects:
            raise BodyMissing(f"body {ref.name!r} is not in the object store (expired or deleted)")
        return self.objects[ref.name]

    async def put(self, name: str, data: bytes, content_type: str) -> BodyRef:
        self.objects[name] = data
        return BodyRef(name=name, size=len(data), content_type=content_type)


def job(job_id: str, profiles: list[VideoProfile], body: bytes, duration_ms: int = 1000, **kw: object) -> JobRequest:
    params = msgspec.to_builtins(TranscodeParams(profiles=tuple(profiles), duration_ms=duration_ms))
    return JobRequest(job_id=job_id, kind="transcode", pipeline="transcode", deadline=time.time() + 60,
                      params=params, body=body, **kw)  # type: ignore[arg-type]


def worker(**kw: object) -> TranscodeWorker:
    args: dict[str, object] = {"worker_id": "w1", "encoder": Ffmpeg(), "bodies": DictBodies(), "caps": Capabilities(),
                               "capacity": 2, "segment_timeout": 30.0, "preset": "veryfast", **kw}
    return TranscodeWorker(**args)  # type: ignore[arg-type]


# One 1 s 320x180 30 fps segment with audio, five renditions in one ffmpeg run (H.265/VP9 kept tiny).
LADDER = [
    VideoProfile(name="h264_ts_15fps", width=256, height=144, bitrate=300_000, fps=15, gop=1000, profile=2),
    VideoProfile(name="h264_mp4_intra", width=192, height=108, bitrate=300_000, gop=-1, format=1),
    VideoProfile(name="h264_constrained_high", width=160, height=90, bitrate=200_000, fps=30, profile=4),
    VideoProfile(name="h265_ts_gop500", width=160, height=90, bitrate=150_000, gop=500, encoder=1),
    VideoProfile(name="vp9_mp4_10fps", width=128, height=72, bitrate=100_000, fps=10, encoder=3, format=1),
]
EXPECT = {  # codec, fps, frames, keyframes, container, profile
    "h264_ts_15fps": ("h264", "15/1", 15, [0], "video/mp2t", "Main"),
    "h264_mp4_intra": ("h264", "30/1", 30, list(range(30)), "video/mp4", None),
    "h264_constrained_high": ("h264", "30/1", 30, None, "video/mp2t", "High"),
    "h265_ts_gop500": ("hevc", "30/1", 30, "every 0.5 s", "video/mp2t", None),
    "vp9_mp4_10fps": ("vp9", "10/1", 10, None, "video/mp4", None),
}


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_segment(tmp_path_factory.mktemp("seg") / "seg.ts", seconds=1.0)


@pytest.fixture(scope="module")
async def ladder(segment: bytes, tmp_path_factory: pytest.TempPathFactory) -> tuple[JobResult, dict[str, Probe]]:
    result = await worker().handle(job("ladder", LADDER, segment))
    assert isinstance(result, JobResult), result
    tmp = tmp_path_factory.mktemp("out")
    return result, {o.name: probe(o.data, tmp, o.name) for o in result.outputs}


@pytest.mark.parametrize("name", list(EXPECT))
async def test_each_profile_comes_out_as_asked(name: str, ladder: tuple[JobResult, dict[str, Probe]]) -> None:
    result, probes = ladder
    out = next(o for o in result.outputs if o.name == name)
    got = probes[name]
    profile = next(p for p in LADDER if p.name == name)
    codec, fps, frames, keyframes, content_type, h264_profile = EXPECT[name]
    assert (got.codec, got.width, got.height, got.fps, got.frames) == (codec, profile.width, profile.height, fps, frames)
    assert out.content_type == content_type
    assert got.duration == pytest.approx(1.0, abs=0.12)
    if keyframes is not None:
        if keyframes == "every 0.5 s":  # the source's rate: forced by media time, to within a frame
            assert got.keyframes[0] == 0 and len(got.keyframes) == 2 and got.keyframes[1] in (15, 16), got.keyframes
        else:
            assert got.keyframes == keyframes
    if h264_profile:
        assert got.profile == h264_profile
    if name == "h264_constrained_high":
        assert not got.has_b_frames
    assert got.audio == "aac"  # the source's audio is copied into every rendition


async def test_pixels_are_exactly_what_ffprobe_recounts(ladder: tuple[JobResult, dict[str, Probe]]) -> None:
    result, probes = ladder
    assert [o.name for o in result.outputs] == [p.name for p in LADDER]  # in profile order
    for out in result.outputs:
        assert out.pixels == probes[out.name].pixels > 0, out.name
    assert result.units == sum(o.pixels for o in result.outputs)


async def test_a_corrupt_segment_is_bad_input_and_the_worker_keeps_serving(segment: bytes, tmp_path: Path) -> None:
    w = worker()
    small = [VideoProfile(name="s", width=128, height=72, bitrate=100_000)]
    for body, said in ((b"\x47" + bytes(range(256)) * 40, "does not decode"), (segment[:564], "does not decode|no decodable")):
        err = await w.handle(job("bad", small, body))
        assert isinstance(err, JobError) and err.code == "bad_input" and not err.retryable, err
        assert re.search(said, err.message), err.message
        assert not re.search(r"baton-seg|/tmp|/dev/shm|@ 0x", err.message), err.message  # no paths or pointers of ours
    # damaged in the middle: what still decodes is transcoded, and still counted exactly
    damaged = bytearray(segment)
    damaged[len(damaged) // 2: len(damaged) // 2 + 4000] = bytes(4000)
    ok = await w.handle(job("damaged", small, bytes(damaged)))
    assert isinstance(ok, JobResult), ok
    assert ok.outputs[0].pixels == probe(ok.outputs[0].data, tmp_path).pixels
    assert w.in_use == 0


async def test_a_bad_profile_is_refused_before_anything_runs(segment: bytes) -> None:
    err = await worker().handle(job("vp8", [VideoProfile(name="webm", width=128, height=72, bitrate=1, encoder=2)], segment))
    assert isinstance(err, JobError) and err.code == "bad_input" and "profile 'webm': VP8" in err.message


async def test_no_free_slot_is_busy_and_retryable(segment: bytes) -> None:
    w = worker(capacity=1)
    changes: list[int] = []
    w.on_change = lambda: changes.append(w.in_use)
    small = [VideoProfile(name="s", width=128, height=72, bitrate=100_000)]
    first = asyncio.create_task(w.handle(job("a", small, segment)))
    while w.in_use == 0:
        await asyncio.sleep(0.001)
    busy = await w.handle(job("b", small, segment))
    assert isinstance(busy, JobError) and busy.code == "busy" and busy.retryable
    assert "OrchestratorBusy" in busy.message
    assert isinstance(await first, JobResult)
    assert changes == [1, 0]


async def test_timeouts_deadlines_and_missing_bodies(segment: bytes) -> None:
    w = worker(segment_timeout=0.02)
    small = [VideoProfile(name="s", width=128, height=72, bitrate=100_000)]
    slow = await w.handle(job("slow", small, segment * 3, duration_ms=0))
    assert isinstance(slow, JobError) and slow.code == "deadline_exceeded" and "timeout" in slow.message
    late = job("late", small, segment)
    late = msgspec.structs.replace(late, deadline=time.time() - 1)
    err = await w.handle(late)
    assert isinstance(err, JobError) and err.code == "deadline_exceeded"
    gone = msgspec.structs.replace(job("gone", small, b""), body_ref=BodyRef(name="gone/in", size=10))
    err = await w.handle(gone)
    assert isinstance(err, JobError) and err.code == "body_missing"
    wrong = msgspec.structs.replace(job("llm", small, segment), kind="inference", pipeline="llm")
    err = await w.handle(wrong)
    assert isinstance(err, JobError) and err.code == "bad_input"
    assert w.in_use == 0


async def test_nvenc_unavailable_here_so_the_cpu_path_is_taken(segment: bytes) -> None:
    """Configured for GPU 0 on a machine without NVENC: detected unavailable, and segments encode on the CPU."""
    caps = await Ffmpeg().detect("0")
    if shutil.which("nvidia-smi") is None:
        assert caps.nvenc == frozenset() and caps.nvdec == frozenset() and caps.encoders == ()
        assert any("h264_nvenc unavailable on GPU 0" in n for n in caps.notes)
        assert any("no NVENC on GPU 0: encoding on the CPU" in n for n in caps.notes)
    ladder = plan_renditions([VideoProfile(name="s", width=128, height=72, bitrate=100_000)])
    accel = plan_accel(ladder, caps)
    if "h264" not in caps.nvenc:
        assert accel.encoders == ("libx264",)
    result = await worker(caps=caps).handle(job("fallback", [VideoProfile(name="s", width=128, height=72, bitrate=100_000)],
                                                segment))
    assert isinstance(result, JobResult) and result.outputs[0].pixels == 30 * 128 * 72


class SessionLimitedGpu:
    """The Encoder port as a consumer GPU past its NVENC session limit answers (no GPU here to reach it)."""

    def __init__(self) -> None:
        self.argv: list[str] = []

    async def run(self, argv: list[str], timeout: float) -> Completed:
        self.argv = argv
        log = "[h264_nvenc @ 0x55] OpenEncodeSessionEx failed: out of memory (10): (no details)\nConversion failed!"
        return Completed(returncode=1, log=log, seconds=0.05)


async def test_the_nvenc_session_limit_is_busy_as_orchestrator_busy(segment: bytes) -> None:
    gpu = SessionLimitedGpu()
    caps = Capabilities(gpu="0", nvenc=frozenset({"h264"}), nvdec=frozenset({"h264"}))
    w = worker(encoder=gpu, caps=caps)
    err = await w.handle(job("nvenc", [VideoProfile(name="s", width=128, height=72, bitrate=100_000)], segment))
    assert "h264_nvenc" in gpu.argv and r"scale_cuda=h=if(lt(iw\,ih)\,72\,-2):w=if(gte(iw\,ih)\,128\,-2)" in " ".join(gpu.argv)
    assert isinstance(err, JobError) and err.code == "busy" and err.retryable and "OrchestratorBusy" in err.message
    assert w.in_use == 0


def test_the_source_codec_is_read_from_the_segment_to_pick_nvdec(segment: bytes, tmp_path: Path) -> None:
    hevc = make_segment(tmp_path / "hevc.ts", size="128x72", seconds=0.2, audio=False, codec="libx265")
    assert (source_codec(segment), source_codec(hevc), source_codec(b"\x47" * 4000), source_codec(b"")) == (
        "h264", "h265", "unknown", "unknown")
    ladder = plan_renditions([VideoProfile(name="s", width=128, height=72, bitrate=100_000)])
    h264_only = Capabilities(gpu="0", nvdec=frozenset({"h264"}))
    assert plan_accel(ladder, h264_only, source_codec(segment)).decode == "nvdec"
    assert plan_accel(ladder, h264_only, source_codec(hevc)).decode == "cpu"  # NVDEC here has no HEVC


async def test_renditions_inline_stay_under_one_body_in_all_and_the_rest_go_to_the_store(segment: bytes) -> None:
    """Three renditions of about 300 KB: inline they would pass NATS's 1 MB max payload, so some go by reference."""
    bodies = DictBodies()
    big = [VideoProfile(name=f"r{i}", width=320, height=180, bitrate=2_500_000, gop=-1) for i in range(3)]
    result = await worker(bodies=bodies).handle(job("big", big, segment))
    assert isinstance(result, JobResult), result
    assert sum(len(o.data) for o in result.outputs) <= INLINE_BODY_MAX
    refs = [o.ref for o in result.outputs if o.ref is not None]
    assert refs and all(bodies.objects[r.name] and r.size == len(bodies.objects[r.name]) for r in refs)
    assert all(bool(o.data) != (o.ref is not None) for o in result.outputs)  # exactly one of the two
