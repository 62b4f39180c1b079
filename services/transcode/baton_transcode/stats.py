"""Reading ffmpeg's own account of what it encoded: sizes, frames, and why it failed.

With ``-loglevel verbose`` ffmpeg prints, per output file, the stream header
(``Output #1, mp4, to '…':`` then ``Stream #1:0: Video: vp9 …, 640x360 …``) and
at the end its muxing summary (``Output stream #1:0 (video): 60 frames
encoded; 60 packets muxed (…)``). The packets muxed into a rendition are the
frames a gateway decodes when it re-counts, so a rendition's pixels are
``packets × width × height``, counted without decoding anything again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EncodedStream", "FailureKind", "classify_failure", "encoded_video", "failure_line", "input_duration"]

_OUTPUT_HEADER = re.compile(r"^Output #(\d+), [\w,]+, to '")
_VIDEO_STREAM = re.compile(r"^\s+Stream #(\d+):(\d+)\S*: Video: (\w+).*?, (\d+)x(\d+)[ ,]")
_FPS = re.compile(r", (\d+(?:\.\d+)?) fps,")
_SUMMARY = re.compile(r"^\s+Output stream #(\d+):(\d+) \(video\): (\d+) frames encoded(?:; (\d+) packets muxed)?")
_CONTEXT = re.compile(r"^(?:\[[\w-]+ @ 0x[0-9a-f]+\] )+")
"""ffmpeg's ``[mpegts @ 0x55…] `` prefix: a pointer, nothing for a gateway."""
_NO_VIDEO = re.compile(r"^Stream specifier ':v:0' in filtergraph description .* matches no streams", re.M)
"""What ffmpeg says when the input has no video stream at all (an audio-only segment)."""
_DURATION = re.compile(r"^\s+Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class EncodedStream:
    """One rendition's video stream as ffmpeg reports it."""

    output: int
    codec: str
    width: int
    height: int
    frames: int
    """Packets muxed into the file (frames encoded where ffmpeg does not say)."""
    fps: float = 0.0

    @property
    def pixels(self) -> int:
        return self.frames * self.width * self.height

    @property
    def media_seconds(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


def encoded_video(log: str) -> dict[int, EncodedStream]:
    """Each output file's video stream, by output index; an output with no summary line is left out."""
    headers: dict[int, tuple[str, int, int, float]] = {}
    counts: dict[int, int] = {}
    in_output = False
    for line in log.splitlines():
        if _OUTPUT_HEADER.match(line):
            in_output = True
            continue
        if line.startswith(("Input #", "Stream mapping:")):
            in_output = False
        m = _VIDEO_STREAM.match(line)
        if m and in_output:
            out = int(m.group(1))
            fps = _FPS.search(line)
            headers.setdefault(out, (m.group(3), int(m.group(4)), int(m.group(5)), float(fps.group(1)) if fps else 0.0))
            continue
        m = _SUMMARY.match(line)
        if m:
            counts[int(m.group(1))] = int(m.group(4) if m.group(4) is not None else m.group(3))
    return {
        out: EncodedStream(output=out, codec=codec, width=w, height=h, frames=counts[out], fps=fps)
        for out, (codec, w, h, fps) in headers.items()
        if out in counts
    }


def input_duration(log: str) -> float:
    """The input's duration from its header (``Duration: 00:00:02.00``); 0 when unknown."""
    for line in log.splitlines():
        m = _DURATION.match(line)
        if m:
            return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return 0.0


FailureKind = str
"""``session_limit``, ``no_video``, ``bad_format``, ``bad_input`` or ``encoder``."""

_SESSION_LIMIT = ("OpenEncodeSessionEx failed: out of memory", "incompatible client key")
_BAD_INPUT = (
    "Invalid data found when processing input",
    "could not find codec parameters",
    "moov atom not found",
    "does not contain any stream",
    "matches no streams",
    "Output file is empty",
    "Invalid NAL unit size",
    "no frame!",
    "Error while decoding stream",
    "Cannot determine format of input stream",
    "unspecified pixel format",
    "unspecified size",
    "exceeds specified max pixel count",  # a source frame above MAX_SIDE² (the decoder's -max_pixels)
)


def classify_failure(log: str, *, nvenc: bool) -> FailureKind:
    """Why an ffmpeg run failed: the NVENC session limit, an input that does not decode, or the encoder."""
    if nvenc and any(s in log for s in _SESSION_LIMIT):
        return "session_limit"
    if _NO_VIDEO.search(log):
        return "no_video"
    if "Format not on whitelist" in log:  # an HLS playlist, a concat list, an image... posing as a segment
        return "bad_format"
    if any(s in log for s in _BAD_INPUT):
        return "bad_input"
    return "encoder"


def failure_line(log: str) -> str:
    """The line that says why: the first naming a known cause, else the last one besides ``Conversion failed!``."""
    lines = [_CONTEXT.sub("", ln.strip()) for ln in log.splitlines() if ln.strip() and not ln.startswith("  ")]
    for line in lines:
        if any(s in line for s in (*_SESSION_LIMIT, *_BAD_INPUT)):
            return line[:200]
    rest = [ln for ln in lines if ln != "Conversion failed!" and not ln.startswith("Statistics:")]
    return (rest or lines or [""])[-1][:200]
