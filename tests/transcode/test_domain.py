"""The ladder read from go-livepeer profiles, the hardware plan and the argv: pure functions."""

from __future__ import annotations

import pytest

from baton_common.schemas.transcode import VideoProfile
from baton_transcode.domain import Capabilities, plan_accel, plan_renditions, segment_timeout
from baton_transcode.errors import BadProfile
from baton_transcode.ladder import build_argv
from baton_transcode.stats import classify_failure, encoded_video, failure_line


def p(name: str = "P360p", **kw: int) -> VideoProfile:
    return VideoProfile(name=name, **{"width": 640, "height": 360, "bitrate": 1_000_000, **kw})


@pytest.mark.parametrize(
    ("encoder", "fmt", "said"),
    [(2, 0, "VP8 cannot be carried in MPEG-TS"), (3, 0, "VP9 cannot be carried in MPEG-TS"),
     (2, 1, "VP8 cannot be carried in MP4")],
)
def test_a_codec_its_container_cannot_carry_is_refused_naming_the_profile(encoder: int, fmt: int, said: str) -> None:
    with pytest.raises(BadProfile, match=f"profile 'webm_ish': {said}") as err:
        plan_renditions([p(), p("webm_ish", encoder=encoder, format=fmt)])
    assert err.value.code == "bad_input"


@pytest.mark.parametrize(
    ("profile", "said"),
    [(p(width=853), "width 853 must be even"), (p(height=0), "height 0 must be even and above 0"),
     (p(encoder=7), "unknown encoder 7"), (p(format=2), "unknown format 2"), (p(profile=9), "unknown H.264 profile 9"),
     (p(gop=-2), "gop -2 ms is invalid"), (p(bitrate=0), "bitrate 0"), (p(encoder=1, profile=3), "H.264 profile high"),
     (p(chromaFormat=1), "only 4:2:0")],
)
def test_bad_profiles_get_a_clear_error(profile: VideoProfile, said: str) -> None:
    with pytest.raises(BadProfile, match=said):
        plan_renditions([profile])


def test_profiles_read_as_go_livepeer_does() -> None:
    default, fixed, intra, ntsc, src_rate = plan_renditions([
        p("a"), p("b", fps=30, gop=2000, profile=4), p("c", gop=-1), p("d", fps=30000, fpsDen=1001, gop=1000),
        p("e", gop=1500, encoder=1, format=1),
    ])
    assert (default.fps, default.gop, default.h264_profile, default.no_b_frames) == (None, None, "", False)
    assert (fixed.fps, fixed.gop, fixed.gop_frames) == ((30, 1), 2.0, 60)
    assert (fixed.h264_profile, fixed.no_b_frames) == ("high", True)  # constrained high = high without B-frames
    assert intra.gop == "intra" and intra.no_b_frames
    assert (ntsc.fps, ntsc.gop_frames) == ((30000, 1001), 29)
    assert (src_rate.fps, src_rate.gop, src_rate.gop_frames, src_rate.content_type) == (None, 1.5, None, "video/mp4")
    assert [r.name for r in plan_renditions([p(""), p("x")])] == ["640x360_1000000", "x"]
    with pytest.raises(BadProfile, match="appears twice"):
        plan_renditions([p("x"), p("x")])
    with pytest.raises(BadProfile, match="no profiles"):
        plan_renditions([])


def test_no_gpu_means_cpu_encoders_and_cpu_decode() -> None:
    ladder = plan_renditions([p(), p("h", encoder=1), p("v", encoder=3, format=1)])
    accel = plan_accel(ladder, Capabilities())
    assert (accel.decode, accel.frames_on_gpu, accel.encoders) == ("cpu", False, ("libx264", "libx265", "libvpx-vp9"))
    argv = build_argv(ladder, accel, "in", ["a", "b", "c"])
    assert "-hwaccel" not in argv and "scale_cuda" not in " ".join(argv)


def test_nvdec_without_nvenc_decodes_on_the_gpu_and_encodes_on_the_cpu() -> None:
    """An H100/H200: NVDEC works, NVENC does not."""
    ladder = plan_renditions([p(), p("b", width=320, height=180)])
    accel = plan_accel(ladder, Capabilities(gpu="0", nvdec=frozenset({"h264", "h265"})))
    assert (accel.decode, accel.frames_on_gpu, accel.encoders) == ("nvdec", False, ("libx264", "libx264"))
    argv = build_argv(ladder, accel, "in", ["a", "b"])
    assert argv[argv.index("-hwaccel") + 1] == "cuda" and argv[argv.index("-hwaccel_device") + 1] == "0"
    assert "-hwaccel_output_format" not in argv  # frames come back to system memory for the CPU encoders
    assert "scale=h=360:w=640" in argv[argv.index("-filter_complex") + 1]


def test_with_nvenc_frames_stay_on_the_gpu_and_vp9_downloads() -> None:
    ladder = plan_renditions([p(), p("v", encoder=3, format=1)])
    accel = plan_accel(ladder, Capabilities(gpu="1", nvenc=frozenset({"h264", "h265"}), nvdec=frozenset({"h264"})))
    assert accel.encoders == ("h264_nvenc", "libvpx-vp9") and accel.frames_on_gpu and accel.uses_nvenc
    argv = build_argv(ladder, accel, "in", ["a", "b"])
    graph = argv[argv.index("-filter_complex") + 1]
    assert argv[argv.index("-hwaccel_output_format") + 1] == "cuda"
    assert graph.count("scale_cuda") == 2 and graph.count("hwdownload") == 1


def test_one_process_decodes_once_and_scales_once_per_rendition() -> None:
    ladder = plan_renditions([p("a", width=1280, height=720), p("b", width=854, height=480), p("c", fps=15)])
    argv = build_argv(ladder, plan_accel(ladder, Capabilities()), "seg.ts", ["a.ts", "b.ts", "c.ts"])
    graph = argv[argv.index("-filter_complex") + 1]
    assert argv.count("-i") == 1 and "split=3" in graph and graph.count("scale=") == 3 and "fps=fps=15/1" in graph
    assert argv[-2:] == ["c.ts", "-y"]
    assert argv.index("-copyts") < argv.index("-i")  # global options before the input, where ffmpeg reads them


def test_segment_timeout_follows_go_livepeer() -> None:
    assert segment_timeout(8.0, 2000, 60) == 8.0
    assert segment_timeout(8.0, 4000, 60) == 16.0
    assert segment_timeout(8.0, 4000, 3.0) == 3.0


def test_failures_are_told_apart() -> None:
    assert classify_failure("[h264_nvenc @ 0x1] OpenEncodeSessionEx failed: out of memory (10)", nvenc=True) == "session_limit"
    assert classify_failure("in: Invalid data found when processing input", nvenc=False) == "bad_input"
    assert classify_failure("Error initializing output stream 0:0", nvenc=False) == "encoder"
    log = ("[mpegts @ 0x1] stream 0: probe\nCannot determine format of input stream 0:0 after EOF\n"
           "Error marking filters as finished\n[AVIOContext @ 0x2] Statistics: 564 bytes read\nConversion failed!\n")
    assert failure_line(log) == "Cannot determine format of input stream 0:0 after EOF"
    assert failure_line("[libx264 @ 0x1f] broken\nConversion failed!\n") == "broken"


def test_the_pixel_count_comes_from_ffmpegs_summary() -> None:
    log = """Output #0, mpegts, to 'a.ts':
  Stream #0:0: Video: h264, 1 reference frame, yuv420p(tv, progressive), 160x120 (0x0) [SAR 1:1 DAR 4:3], q=2-31, 30 fps, 90k tbn
Output #1, mp4, to 'b.mp4':
  Stream #1:0: Video: vp9, 1 reference frame (vp09 / 0x39307076), yuv420p(tv, progressive), 96x64 (0x0), q=2-31, 15 fps, 15360 tbn
Output file #0 (a.ts):
  Output stream #0:0 (video): 30 frames encoded; 30 packets muxed (12399 bytes); 
Output file #1 (b.mp4):
  Output stream #1:0 (video): 15 frames encoded; 14 packets muxed (6165 bytes); 
"""
    streams = encoded_video(log)
    assert (streams[0].pixels, streams[1].pixels) == (30 * 160 * 120, 14 * 96 * 64)
    assert streams[1].codec == "vp9" and streams[1].media_seconds == 14 / 15
