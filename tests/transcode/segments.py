"""Test segments made with lavfi sources, and ffprobe's re-count of a rendition (what a gateway checks)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Probe", "make_segment", "probe"]


def make_segment(path: Path, *, size: str = "320x180", rate: str = "30", seconds: float = 1.0, audio: bool = True,
                 codec: str = "libx264") -> bytes:
    """An MPEG-TS segment as a gateway sends one (H.264 with AAC), from testsrc2 and a sine."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-b:a", "64k"]
    args += ["-c:v", codec, "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-f", "mpegts", "-y", str(path)]
    subprocess.run(args, check=True, timeout=60)
    return path.read_bytes()


@dataclass(frozen=True)
class Probe:
    codec: str
    width: int
    height: int
    fps: str
    frames: int
    keyframes: list[int]
    """Indexes of the keyframes among the decoded frames."""
    duration: float
    profile: str
    has_b_frames: bool
    audio: str

    @property
    def pixels(self) -> int:
        return self.frames * self.width * self.height


def probe(data: bytes, tmp: Path, name: str = "r") -> Probe:
    """Decode every frame of a rendition with ffprobe, as a gateway re-counting pixels does."""
    path = tmp / name
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "stream=codec_type,codec_name,width,height,r_frame_rate,profile,has_b_frames:frame=key_frame,pict_type:format=duration",
         "-show_frames", "-select_streams", "v:0", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    info = json.loads(out.stdout)
    video = info["streams"][0]
    frames = info.get("frames", [])
    audio = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=60).stdout.split()
    # An MPEG-TS stream header has no B-frame flag ffprobe trusts; the frames' picture types tell.
    return Probe(
        codec=video["codec_name"], width=video["width"], height=video["height"], fps=video["r_frame_rate"],
        frames=len(frames), keyframes=[i for i, f in enumerate(frames) if f.get("key_frame") == 1],
        duration=float(info["format"].get("duration", 0)), profile=video.get("profile", ""),
        has_b_frames=any(f.get("pict_type") == "B" for f in frames), audio=audio[0] if audio else "",
    )
