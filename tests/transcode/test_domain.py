"""The ladder read from go-livepeer profiles, the hardware plan and the argv: pure functions."""

from __future__ import annotations

import pytest

from baton_common.schemas.transcode import VideoProfile
from baton_transcode.domain import (
    Capabilities,
    check_budget,
    frame_budget,
    metric_label,
    plan_accel,
    plan_renditions,
    segment_timeout,
)
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
    [(p(height=0), "height 0 must be above 0 and at most 8192"), (p(width=16384), "width 16384 must be above 0"),
     (p(encoder=7), "unknown encoder 7"), (p(format=2), "unknown format 2"), (p(profile=9), "unknown H.264 profile 9"),
     (p(gop=-2), "gop -2 ms is invalid"), (p(encoder=1, profile=3), "H.264 profile high"),
     (p(chromaFormat=1), "only 4:2:0"), (p(fps=2**32 - 1, fpsDen=2**32 - 2), "does not fit a 32-bit fraction"),
     (p(bitrate=2**40), "bitrate 1099511627776 is out of go-livepeer's range"), (p(gop=2**31), "gop 2147483648 is out"),
     (p("P720p\n[0:v]split"), "no control characters"), (p("x" * 10_000), "at most 255 characters")],
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
    assert [r.name for r in plan_renditions([p(""), p("x")])] == ["net_640x360_1000000", "x"]
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
    assert r"scale=h=if(lt(iw\,ih)\,360\,-2):w=if(gte(iw\,ih)\,640\,-2)" in argv[argv.index("-filter_complex") + 1]


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
    assert classify_failure("Stream specifier ':v:0' in filtergraph description [0:v:0]split=2[s0][s1] matches no "
                            "streams.\n", nvenc=False) == "no_video"
    assert classify_failure("[hls @ 0x1] Format not on whitelist 'mpegts,mov'\nsegment: Invalid argument",
                            nvenc=False) == "bad_format"
    assert classify_failure("in: Invalid data found when processing input", nvenc=False) == "bad_input"
    assert classify_failure("Error initializing output stream 0:0", nvenc=False) == "encoder"
    log = ("[mpegts @ 0x1] stream 0: probe\nCannot determine format of input stream 0:0 after EOF\n"
           "Error marking filters as finished\n[AVIOContext @ 0x2] Statistics: 564 bytes read\nConversion failed!\n")
    assert failure_line(log) == "Cannot determine format of input stream 0:0 after EOF"
    assert failure_line("[libx264 @ 0x1f] broken\nConversion failed!\n") == "broken"
    huge = ("[h264 @ 0x55] [IMGUTILS @ 0x7ffe] Picture size 16384x16384 exceeds specified max pixel count 67108864, "
            "see the documentation if you wish to increase it\nError while opening decoder for input stream #0:0 : "
            "Invalid argument\n")
    assert classify_failure(huge, nvenc=False) == "bad_input"
    assert failure_line(huge).startswith("Picture size 16384x16384 exceeds specified max pixel count 67108864")


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


def test_odd_sizes_round_up_to_even_and_the_scale_keeps_the_aspect_ratio_as_go_livepeer() -> None:
    """lpms scales with w=if(gte(iw,ih),W,-2):h=if(lt(iw,ih),H,-2); an odd W would make libx264 refuse it, so 853 → 854."""
    (r,) = plan_renditions([p("P480p", width=853, height=479)])
    assert (r.width, r.height) == (854, 480)
    argv = build_argv([r], plan_accel([r], Capabilities()), "in", ["a"])
    graph = argv[argv.index("-filter_complex") + 1]
    assert r"scale=h=if(lt(iw\,ih)\,480\,-2):w=if(gte(iw\,ih)\,854\,-2)" in graph


def test_the_fps_filter_comes_after_the_scale_as_lpms_and_the_bitrate_is_also_the_vbv() -> None:
    ladder = plan_renditions([p("a", fps=15), p("b", bitrate=0)])
    argv = build_argv(ladder, plan_accel(ladder, Capabilities()), "in", ["a.ts", "b.ts"])
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.index("scale=") < graph.index("fps=fps=15/1")
    first, second = argv[:argv.index("a.ts")], argv[argv.index("a.ts"):]
    assert [first[first.index(o) + 1] for o in ("-b:v", "-maxrate", "-bufsize")] == ["1000000"] * 3
    assert "-b:v" not in second and "-maxrate" not in second  # bitrate 0: the encoder's default, as go-livepeer


def test_the_segment_is_read_only_as_one_media_file() -> None:
    """An HLS playlist or concat list posing as a segment would make ffmpeg open other files or URLs."""
    ladder = plan_renditions([p()])
    argv = build_argv(ladder, plan_accel(ladder, Capabilities()), "in", ["a"])
    before_input = argv[:argv.index("-i")]
    formats = before_input[before_input.index("-format_whitelist") + 1].split(",")
    assert "mpegts" in formats and "mov" in formats and not {"hls", "concat", "image2", "lavfi"} & set(formats)
    assert before_input[before_input.index("-protocol_whitelist") + 1] == "file"
    assert before_input[before_input.index("-max_pixels") + 1] == str(8192 * 8192)
    assert argv[argv.index("-map", argv.index("-filter_complex")) + 3] == "0:a:0?"  # the first audio stream only


def test_a_ladder_above_the_pixel_rate_or_a_huge_duration_is_refused_before_anything_runs() -> None:
    huge = plan_renditions([p(f"r{i}", width=8192, height=8192, fps=240) for i in range(16)])
    with pytest.raises(BadProfile, match=r"257,698 million pixels per second, above this worker's 1,000 million "
                                         r"\(BATON_TRANSCODE_MAX_PIXEL_RATE\)"):
        check_budget(huge, 2000, 1e9)
    ladder = plan_renditions([p("P1080p", width=1920, height=1080, fps=60), p("src", width=1280, height=720)])
    check_budget(ladder, 2000, 1e9)  # 1080p60 + 720p at the source's rate (counted at 60)
    with pytest.raises(BadProfile, match="counts|million pixels"):
        check_budget(ladder, 2000, 1920 * 1080 * 60 + 1280 * 720 * 59)
    with pytest.raises(BadProfile, match="segment duration 2147483647 ms is above 300000 ms"):
        check_budget(ladder, 2**31 - 1, 1e9)


def test_each_rendition_has_a_frame_budget_and_a_bounded_metric_label() -> None:
    fixed, ntsc, source = plan_renditions([p("a", fps=30), p("b", fps=30000, fpsDen=1001), p("c", height=720)])
    assert (frame_budget(fixed, 2000), frame_budget(ntsc, 2000), frame_budget(source, 2000)) == (106, 106, 841)
    assert frame_budget(fixed, 0) is None  # no duration to go by
    assert (metric_label(fixed), metric_label(source)) == ("360p", "720p")
    assert metric_label(plan_renditions([p("../../x; rm -rf", height=362)])[0]) == "other"
    argv = build_argv([fixed], plan_accel([fixed], Capabilities()), "in", ["a"], frames=[106], max_bytes=1000)
    assert argv[argv.index("-frames:v") + 1] == "107"  # one past the budget: an output over it is seen
    assert argv[argv.index("-fs") + 1] == "1000"


def test_an_absurd_gop_stays_within_ffmpegs_int() -> None:
    (r,) = plan_renditions([p(fps=240, gop=2**31 - 1)])
    assert r.gop_frames == int((2**31 - 1) / 1000 * 240) < 2**31
