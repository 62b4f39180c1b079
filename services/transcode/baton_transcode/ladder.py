"""The ffmpeg command of one segment's ladder, built with ffmpeg-python: a pure function.

One ffmpeg process per segment: the input is decoded once (on NVDEC where it
works), split, and each branch is scaled once for its rendition (``scale_cuda``
while the frames stay on the GPU), then rate-converted, then encoded (NVENC or
the CPU encoder :func:`~.domain.plan_accel` chose). As go-livepeer (lpms):
the scale keeps the source's aspect ratio along its longer side
(``w=if(gte(iw,ih),W,-2):h=if(lt(iw,ih),H,-2)``), the ``fps`` filter comes
after the scale (so that copies it makes to fill a timestamp gap are not scaled
too), and a bitrate is the target, the VBV maximum and the buffer. The first
audio stream, if any, is copied into every rendition, and timestamps pass
through (``-copyts``) so renditions line up with the source in the gateway's playlist.

The input is read only as a media file: ``-format_whitelist`` keeps ffmpeg
from reading a "segment" that is an HLS playlist or a concat list (which would
open other files or URLs), ``-protocol_whitelist file`` keeps it on the one
file, and ``-max_pixels`` makes the decoder refuse frames above
:data:`~.domain.MAX_SIDE` squared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ffmpeg

from .domain import MAX_SIDE, Accel, Rendition

__all__ = ["INPUT_FORMATS", "build_argv"]

INPUT_FORMATS = "mpegts,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,flv"
"""The demuxers a segment may be read with (MPEG-TS, MP4/MOV, Matroska/WebM, FLV): never hls, concat or image2."""


def _encoder_options(r: Rendition, encoder: str, preset: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"c:v": encoder}
    if r.bitrate:  # as lpms: bit_rate = rc_max_rate = rc_buffer_size; 0 leaves the encoder's default
        opts |= {"b:v": str(r.bitrate), "maxrate": str(r.bitrate), "bufsize": str(r.bitrate)}
    x265 = ["log-level=error"]
    if encoder in ("libx264", "libx265"):
        opts["preset"] = preset
        opts["pix_fmt"] = "yuv420p"
    elif encoder.startswith("libvpx"):
        # Segments are live video: realtime speed, constant-bitrate-ish rate control.
        opts |= {"deadline": "realtime", "cpu-used": "8", "pix_fmt": "yuv420p"}
        if encoder == "libvpx-vp9":
            opts["row-mt"] = "1"
    else:  # NVENC
        opts |= {"preset": "p4", "bf": "0"}  # B-frames off with passed-through timestamps, as go-livepeer does
    if r.h264_profile:
        opts["profile:v"] = r.h264_profile
    if r.no_b_frames:
        opts["bf"] = "0"
    if r.gop == "intra":
        opts["g"] = "1"
    elif r.gop is not None:
        frames = r.gop_frames
        if frames is not None:  # fixed rate: a fixed interval in frames, and no extra scene-cut keyframes
            opts["g"] = str(frames)
            if encoder == "libx264":
                opts["keyint_min"] = str(frames)
                opts["sc_threshold"] = "0"
            elif encoder == "libx265":
                x265 += [f"keyint={frames}", f"min-keyint={frames}", "scenecut=0"]
        else:  # the source's rate, unknown here: a keyframe every gop seconds of media time
            opts["force_key_frames"] = f"expr:gte(t,n_forced*{r.gop:g})"
            if encoder.endswith("_nvenc") or encoder == "libx265":
                opts["forced-idr"] = "1"  # a forced keyframe starts a closed GOP (IDR), where a segment may be cut
    if encoder == "libx265":
        opts["x265-params"] = ":".join(x265)
    if r.codec == "h265" and r.container == "mp4":
        opts["tag:v"] = "hvc1"  # what Apple players and most gateways expect of HEVC in MP4
    opts["f"] = r.container
    if r.container == "mpegts":
        opts["muxdelay"] = "0"
    else:  # MP4 starts at 0, with no empty edit for the passed-through start time
        opts["avoid_negative_ts"] = "make_zero"
    return opts


def build_argv(
    renditions: Sequence[Rendition],
    accel: Accel,
    source: str,
    outputs: Sequence[str],
    *,
    binary: str = "ffmpeg",
    preset: str = "veryfast",
    frames: Sequence[int | None] = (),
    max_bytes: int = 0,
) -> list[str]:
    """ffmpeg's argv for ``renditions`` from ``source`` into ``outputs`` (same order); ``-loglevel verbose``
    so that :func:`~.stats.encoded_video` can count what was encoded.

    ``frames`` (one per rendition, from :func:`~.domain.frame_budget`) stops each output one frame past its
    budget, so that a rendition over it is seen without encoding the whole gap."""
    if len(outputs) != len(renditions) or len(accel.encoders) != len(renditions):
        raise ValueError("one output path and one encoder per rendition")
    budgets = list(frames) or [None] * len(renditions)
    if len(budgets) != len(renditions):
        raise ValueError("one frame budget per rendition")
    in_opts: dict[str, Any] = {"format_whitelist": INPUT_FORMATS, "protocol_whitelist": "file",
                               "max_pixels": str(MAX_SIDE * MAX_SIDE)}
    if accel.decode == "nvdec":
        in_opts |= {"hwaccel": "cuda", "hwaccel_device": accel.gpu or "0"}
        if accel.frames_on_gpu:
            in_opts["hwaccel_output_format"] = "cuda"
    src = ffmpeg.input(source, **in_opts)
    video = src["v:0"]
    branches = [video] if len(renditions) == 1 else [
        video.filter_multi_output("split", len(renditions)).stream(i) for i in range(len(renditions))
    ]
    outs = []
    for r, encoder, branch, path, budget in zip(renditions, accel.encoders, branches, outputs, budgets, strict=True):
        # go-livepeer's scale: the box's width for a landscape (or square) source, its height for a portrait one,
        # the other side from the source's aspect ratio, rounded to even (-2).
        size = {"w": f"if(gte(iw,ih),{r.width},-2)", "h": f"if(lt(iw,ih),{r.height},-2)"}
        v = branch
        if accel.frames_on_gpu:
            v = v.filter("scale_cuda", **size)
        else:
            v = v.filter("scale", **size)
        if r.fps is not None:
            v = v.filter("fps", fps=f"{r.fps[0]}/{r.fps[1]}")
        if accel.frames_on_gpu and not encoder.endswith("_nvenc"):  # a CPU encode (VP8/VP9) from GPU frames
            v = v.filter("hwdownload").filter("format", "nv12")
        opts = {"c:a": "copy", **_encoder_options(r, encoder, preset)}
        if budget is not None:
            opts["frames:v"] = str(budget + 1)
        if max_bytes:
            opts["fs"] = str(max_bytes)
        outs.append(ffmpeg.output(v, src["a:0?"], path, **opts))
    compiled = ffmpeg.merge_outputs(*outs).compile(cmd=binary, overwrite_output=True)
    # Global options go before the inputs: ffmpeg ignores trailing ones.
    return [binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "verbose", "-copyts", *compiled[1:]]
