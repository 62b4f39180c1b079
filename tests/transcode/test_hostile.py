"""A hostile gateway against the worker, with the real ffmpeg and ffprobe: every input gets a clear answer, the
worker keeps serving, and what it reports is what a gateway re-counts.

Each test here failed before the fix it names (see the module docstrings of domain.py, ladder.py and ffmpeg.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from baton_common.schemas.jobs import JobError, JobResult
from baton_common.schemas.transcode import VideoProfile
from baton_transcode import metrics
from baton_transcode.ffmpeg import Completed, Ffmpeg
from tests.transcode.segments import make_segment, probe
from tests.transcode.test_worker import DictBodies, job, worker

SMALL = [VideoProfile(name="s", width=128, height=72, bitrate=100_000)]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *args], check=True, timeout=60)


def streams(data: bytes, tmp: Path) -> list[str]:
    path = tmp / "streams"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    return [s["codec_type"] for s in json.loads(out.stdout)["streams"]]


class Recorder:
    """The Encoder port, noting whether anything ran."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, argv: list[str], timeout: float) -> Completed:
        self.runs += 1
        return Completed(returncode=1, log="", seconds=0.0)


@pytest.mark.parametrize(
    ("profiles", "duration_ms", "said"),
    [([VideoProfile(name=f"r{i}", width=8192, height=8192, bitrate=1, fps=240) for i in range(16)], 2000,
      "million pixels per second, above this worker's 1,000 million"),
     (SMALL, 2**31 - 1, "segment duration 2147483647 ms is above 300000 ms"),
     ([VideoProfile(name=f"r{i}", width=128, height=72) for i in range(17)], 2000, "at most 16 renditions"),
     ([VideoProfile(name="neg", width=128, height=72, bitrate=-1)], 2000, "Expected `int` >= 0 - at `$.profiles[0].bitrate`"),
     ([VideoProfile(name="big", width=100_000, height=100_000)], 2000, "Expected `int` <= 16384 - at `$.profiles[0].width`"),
     ([VideoProfile(name="fps0", width=128, height=72, fps=30, fpsDen=0, encoder=9)], 2000, "unknown encoder 9")],
)
async def test_a_ladder_beyond_the_limits_is_refused_before_anything_runs(
    profiles: list[VideoProfile], duration_ms: int, said: str,
) -> None:
    encoder = Recorder()
    w = worker(encoder=encoder)
    err = await w.handle(job("huge", profiles, b"\x47" * 188, duration_ms=duration_ms))
    assert isinstance(err, JobError) and err.code == "bad_input" and not err.retryable and said in err.message, err
    assert encoder.runs == 0 and w.in_use == 0


async def test_a_playlist_posing_as_a_segment_opens_nothing_else(tmp_path: Path) -> None:
    """ffmpeg would read an HLS playlist's entries: other files on the worker (or URLs) transcoded as the segment."""
    other = tmp_path / "another-gateways-segment.ts"
    make_segment(other, size="128x72", seconds=0.5, audio=False)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.5,\nfile://{other}\n#EXT-X-ENDLIST\n".encode()
    err = await worker().handle(job("hls", SMALL, playlist))
    assert isinstance(err, JobError) and err.code == "bad_input", err
    assert err.message == "the segment is not a media file this worker reads (MPEG-TS, MP4/MOV, Matroska/WebM, FLV)"


async def test_an_audio_only_segment_is_transcoder_invalid_video_and_the_worker_keeps_serving(tmp_path: Path) -> None:
    """go-livepeer fails it as ErrTranscoderVid; gateways match that exact text and do not retry it elsewhere."""
    audio = tmp_path / "audio.ts"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-f", "mpegts", "-y", str(audio))
    w = worker()
    err = await w.handle(job("audio", SMALL, audio.read_bytes()))
    assert isinstance(err, JobError) and (err.code, err.message, err.retryable) == (
        "bad_input", "TranscoderInvalidVideo", False), err
    ok = await w.handle(job("next", SMALL, make_segment(tmp_path / "v.ts", size="128x72", seconds=0.5)))
    assert isinstance(ok, JobResult) and w.in_use == 0


async def test_a_timestamp_gap_fails_as_lpms_frame_guard_instead_of_billing_copies(tmp_path: Path) -> None:
    """Three frames, the last 100 s later: an fps filter would fill the gap with 3000 copies, all billed as pixels."""
    gap = tmp_path / "gap.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=30:duration=0.1", "-vf", "setpts='PTS+if(eq(N,2),100/TB,0)'",
           "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", "-y", str(gap))
    w = worker()
    start = time.monotonic()
    err = await w.handle(job("gap", [VideoProfile(name="s30", width=128, height=72, bitrate=100_000, fps=30)],
                             gap.read_bytes(), duration_ms=1000))
    assert isinstance(err, JobError) and (err.code, err.message) == ("bad_input", "Output frame count larger than expected")
    assert time.monotonic() - start < 10 and w.in_use == 0  # stopped one frame past the budget, not at 3000


async def test_portrait_odd_and_fps_changes_keep_the_aspect_ratio_and_count_exactly(tmp_path: Path) -> None:
    """As go-livepeer: the longer side of the source takes the box's matching side, the other follows (rounded
    to even); a portrait source is not rotated into the box. Every count equals ffprobe's re-count."""
    portrait = make_segment(tmp_path / "portrait.ts", size="180x320", seconds=1.0)
    landscape = make_segment(tmp_path / "landscape.ts", size="320x180", seconds=1.0)
    ladder = [VideoProfile(name="P360p", width=640, height=360, bitrate=300_000),
              VideoProfile(name="odd", width=853, height=480, bitrate=300_000, fps=30000, fpsDen=1001),
              VideoProfile(name="P144p15", width=256, height=144, bitrate=100_000, fps=15, format=1)]
    expect = {"portrait": [(202, 360), (270, 480), (82, 144)], "landscape": [(640, 360), (854, 480), (256, 144)]}
    for label, segment in (("portrait", portrait), ("landscape", landscape)):
        result = await worker().handle(job(label, ladder, segment))
        assert isinstance(result, JobResult), result
        probes = [probe(o.data, tmp_path, f"{label}{i}") for i, o in enumerate(result.outputs)]
        assert [(p.width, p.height) for p in probes] == expect[label]
        assert [p.fps for p in probes] == ["30/1", "30000/1001", "15/1"]
        assert [o.pixels for o in result.outputs] == [p.pixels for p in probes]
        assert [p.frames for p in probes] == [30, 30, 15]


async def test_hostile_names_and_absurd_values_transcode_safely_under_bounded_metric_labels(tmp_path: Path) -> None:
    """Names are the gateway's: they never reach a file name, a filter graph or a metric label."""
    names = ["../../../etc/cron.d/x", "a;rm -rf /;'\"$(id)`id`", "[0:v]split=9[o];[o]", "P720p/../../in", "ünï côdé ✓"]
    profiles = [VideoProfile(name=n, width=128, height=72, bitrate=100_000) for n in names]
    profiles[0] = VideoProfile(name=names[0], width=128, height=72, bitrate=0, gop=2**31 - 1, fps=1, fpsDen=1)
    cwd = set(os.listdir())
    result = await worker().handle(job("names", profiles, make_segment(tmp_path / "s.ts", size="128x72", seconds=1.0)))
    assert isinstance(result, JobResult), result
    assert [o.name for o in result.outputs] == names
    assert [o.pixels for o in result.outputs] == [probe(o.data, tmp_path, f"n{i}").pixels
                                                  for i, o in enumerate(result.outputs)]
    assert result.outputs[0].pixels == 1 * 128 * 72  # 1 fps for 1 s
    assert set(os.listdir()) == cwd
    labels = {s.labels["rendition"] for m in metrics.REALTIME_FACTOR.collect() for s in m.samples}
    assert labels <= {"144p", "240p", "360p", "480p", "576p", "720p", "1080p", "1440p", "2160p", "other"}, labels


async def test_a_segment_of_many_streams_gives_one_video_and_one_audio_per_rendition(tmp_path: Path) -> None:
    many = tmp_path / "many.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=30:duration=0.5", "-f", "lavfi", "-i",
           "testsrc=size=160x90:rate=30:duration=0.5", *[a for _ in range(3) for a in ("-f", "lavfi", "-i", "sine=d=0.5")],
           *[a for i in range(5) for a in ("-map", f"{i}")], "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           "-f", "mpegts", "-y", str(many))
    result = await worker().handle(job("many", SMALL * 1, many.read_bytes(), duration_ms=500))
    assert isinstance(result, JobResult), result
    assert sorted(streams(result.outputs[0].data, tmp_path)) == ["audio", "video"]
    assert result.outputs[0].pixels == probe(result.outputs[0].data, tmp_path).pixels == 15 * 128 * 72


async def test_a_hung_ffmpeg_is_killed_with_its_children_and_the_slot_is_freed(tmp_path: Path) -> None:
    """An ffmpeg that never ends, with a child holding its stderr: the timeout kills the whole process group."""
    pidfile = tmp_path / "child.pid"
    hang = tmp_path / "ffmpeg-hangs"
    hang.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nwait\n")
    hang.chmod(0o755)
    w = worker(encoder=Ffmpeg(str(hang)), segment_timeout=0.5, capacity=1)
    err = await asyncio.wait_for(w.handle(job("hang", SMALL, b"\x47" * 188, duration_ms=0)), timeout=20)
    assert isinstance(err, JobError) and err.code == "deadline_exceeded" and "timeout" in err.message, err
    assert w.in_use == 0
    child = int(pidfile.read_text())
    for _ in range(100):  # killed (a zombie until someone reaps it counts as gone)
        try:
            state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            break
        if state in ("Z", "X"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the hung command's child {child} still runs")
    ok = await w.handle(job("next", SMALL, b"\x47" * 188, duration_ms=0))  # its one slot is free again: not busy
    assert isinstance(ok, JobError) and ok.code == "deadline_exceeded"


async def test_a_rendition_past_the_size_limit_is_stopped_and_refused(tmp_path: Path) -> None:
    """A gateway's 2 Gbps intra-only profile would fill the work directory (/dev/shm); -fs stops the file."""
    w = worker(max_rendition_bytes=50_000)
    big = [VideoProfile(name="huge", width=320, height=180, bitrate=2**31 - 1, gop=-1)]
    err = await w.handle(job("big", big, make_segment(tmp_path / "s.ts", seconds=1.0)))
    assert isinstance(err, JobError) and err.code == "bad_input", err
    assert err.message == "rendition 'huge' reached the 0.0476837 MiB limit of one rendition"
    assert w.in_use == 0


class TwoRenditions:
    """The Encoder port as ffmpeg answering a two-rendition ladder: a big first file, a second far over its budget."""

    async def run(self, argv: list[str], timeout: float) -> Completed:
        first, second = (a for a in argv if a.endswith(".ts"))
        Path(first).write_bytes(b"\x47" * 700_000)  # above the inline share: it would go to the object store
        Path(second).write_bytes(b"\x47" * 1000)
        log = "".join(
            f"Output #{i}, mpegts, to '{path}':\n  Stream #{i}:0: Video: h264, yuv420p, 128x72, q=2-31, 30 fps\n"
            for i, path in enumerate((first, second)))
        log += ("Output file #0:\n  Output stream #0:0 (video): 30 frames encoded; 30 packets muxed (1 bytes);\n"
                "Output file #1:\n  Output stream #1:0 (video): 9000 frames encoded; 9000 packets muxed (1 bytes);\n")
        return Completed(returncode=0, log=log, seconds=0.1)


async def test_a_refused_segment_leaves_no_rendition_in_the_object_store() -> None:
    bodies = DictBodies()
    w = worker(encoder=TwoRenditions(), bodies=bodies)
    ladder = [VideoProfile(name="a", width=128, height=72, bitrate=100_000, fps=30),
              VideoProfile(name="b", width=128, height=72, bitrate=100_000, fps=30)]
    err = await w.handle(job("leak", ladder, b"\x47" * 188, duration_ms=1000))
    assert isinstance(err, JobError) and err.message == "Output frame count larger than expected", err
    assert bodies.objects == {}


@pytest.mark.parametrize("container", ["mp4", "matroska"])
async def test_the_format_whitelist_still_reads_mp4_and_matroska_segments(container: str, tmp_path: Path) -> None:
    segment = tmp_path / "seg"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=30:duration=0.5", "-c:v", "libx264", "-preset", "ultrafast",
           "-f", container, "-y", str(segment))
    result = await worker().handle(job(container, SMALL, segment.read_bytes(), duration_ms=500))
    assert isinstance(result, JobResult), result
    assert result.outputs[0].pixels == probe(result.outputs[0].data, tmp_path).pixels == 15 * 128 * 72
