"""Pure transcode logic: go-livepeer profiles read into renditions, and the hardware plan.

No ffmpeg, no NATS here. :func:`plan_renditions` reads ``VideoProfile`` as
go-livepeer does (``gop`` in ms, -1 intra-only; ``fps`` 0 keeps the source
rate; ``fpsDen`` 0 means 1; ``bitrate`` 0 leaves the encoder's default rate
control) and refuses, naming the profile, what cannot be produced: a codec its
container cannot carry (VP8 or VP9 in MPEG-TS, VP8 in MP4), a zero size or a
side above :data:`MAX_SIDE`, an enum value go-livepeer does not define. An odd
size is rounded up to even (4:2:0 video; go-livepeer's libx264 would refuse
it). :func:`check_budget` refuses, before anything runs, a ladder whose claimed
duration × frame rate × pixels is above the worker's limits, and
:func:`frame_budget` bounds what each rendition may produce (go-livepeer's
output frame guard). :class:`Capabilities` is what the hardware probe found;
:func:`plan_accel` picks, per segment, where decoding, scaling and each encode run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from baton_common.schemas.transcode import CODECS, FORMATS, GOP_INTRA_ONLY, H264_PROFILES, MAX_SEGMENT_MS, VideoProfile

from .errors import BadProfile

__all__ = [
    "CONTENT_TYPES",
    "CPU_ENCODERS",
    "MAX_RENDITIONS",
    "MAX_RENDITION_BYTES",
    "NVENC_ENCODERS",
    "Accel",
    "Capabilities",
    "Codec",
    "Container",
    "Rendition",
    "check_budget",
    "frame_budget",
    "metric_label",
    "plan_accel",
    "plan_renditions",
    "segment_timeout",
    "source_codec",
]

Codec = Literal["h264", "h265", "vp8", "vp9"]
Container = Literal["mpegts", "mp4"]

CPU_ENCODERS: dict[str, str] = {"h264": "libx264", "h265": "libx265", "vp8": "libvpx", "vp9": "libvpx-vp9"}
NVENC_ENCODERS: dict[str, str] = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}
"""NVENC has no VP8/VP9 encoder: those always encode on the CPU."""
CONTENT_TYPES: dict[str, str] = {"mpegts": "video/mp2t", "mp4": "video/mp4"}
EXTENSIONS: dict[str, str] = {"mpegts": "ts", "mp4": "mp4"}
CARRIES: dict[str, frozenset[str]] = {
    "mpegts": frozenset({"h264", "h265"}),
    "mp4": frozenset({"h264", "h265", "vp9"}),
}
"""Which codecs each container carries, as ffmpeg muxes them (no VP8/VP9 in MPEG-TS, no VP8 in MP4)."""
MAX_RENDITIONS = 16
MAX_FPS = 240
"""The highest output frame rate; also the source rate assumed for a frame budget when a profile keeps it."""
MAX_SIDE = 8192
"""The longest side of a rendition (NVENC's HEVC limit); the decoder refuses source frames above MAX_SIDE²."""
MAX_NAME = 255
MAX_RENDITION_BYTES = 256 * 2**20
"""The largest rendition file (ffmpeg's ``-fs``): 50 Mbps for 40 s. It bounds the work directory (``/dev/shm``)."""
ASSUMED_FPS = 60
"""The frame rate a profile that keeps the source's rate counts at in :func:`check_budget` (as a gateway's fee estimate)."""
_INT32 = 2**31 - 1
_LABELS = frozenset({144, 240, 360, 480, 576, 720, 1080, 1440, 2160})


@dataclass(frozen=True, slots=True)
class Rendition:
    """One output of the ladder, checked and normalised."""

    index: int
    name: str
    width: int
    height: int
    """The profile's box, rounded up to even. As go-livepeer, the output keeps the source's aspect ratio: a landscape
    (or square) source gets ``width`` and the height that follows, a portrait one ``height`` and the width that follows."""
    bitrate: int
    """Bits per second (the target, the VBV maximum and the buffer, as go-livepeer); 0 = the encoder's default."""
    fps: tuple[int, int] | None
    """(numerator, denominator), or None to keep the source's rate."""
    codec: Codec
    container: Container
    h264_profile: str
    """``baseline``, ``main``, ``high`` or empty (the encoder's default); constrained high is ``high`` without B-frames."""
    no_b_frames: bool
    gop: float | Literal["intra"] | None
    """Keyframe interval in seconds, ``intra`` (every frame a keyframe), or None (the encoder's default)."""

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.container]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.container]

    @property
    def gop_frames(self) -> int | None:
        """Keyframe interval in frames when both the GOP and the frame rate are fixed (as go-livepeer's ``g``)."""
        if self.fps is None or not isinstance(self.gop, float):
            return None
        return min(_INT32, max(1, int(self.gop * self.fps[0] / self.fps[1])))


def _even(size: int) -> int:
    """An odd size rounded up to even: 853 (480 × 16/9) becomes 854, as 4:2:0 video needs."""
    return size + size % 2


def _enum(value: int, table: dict[int, str], what: str, name: str) -> str:
    if value not in table:
        raise BadProfile(f"profile {name!r}: unknown {what} {value} (go-livepeer defines {sorted(table)})")
    return table[value]


def plan_renditions(profiles: Sequence[VideoProfile]) -> tuple[Rendition, ...]:
    """The ladder for ``profiles``, in order; :class:`BadProfile` names the first one that cannot be made."""
    if not profiles:
        raise BadProfile("no profiles: a segment needs at least one rendition")
    if len(profiles) > MAX_RENDITIONS:
        raise BadProfile(f"{len(profiles)} profiles: at most {MAX_RENDITIONS} renditions per segment")
    out = []
    names: set[str] = set()
    for i, p in enumerate(profiles):
        name = p.name or f"net_{p.width}x{p.height}_{p.bitrate}"  # go-livepeer's "net_" + DefaultProfileName
        if len(name) > MAX_NAME or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            raise BadProfile(f"profile {name[:40]!r}: a name has at most {MAX_NAME} characters and no control characters")
        if name in names:
            raise BadProfile(f"profile {name!r} appears twice; rendition names must be unique")
        names.add(name)
        for what, value, top in (("bitrate", p.bitrate, _INT32), ("gop", p.gop, _INT32), ("fps", p.fps, 2**32 - 1),
                                 ("fpsDen", p.fpsDen, 2**32 - 1)):
            if abs(value) > top:  # the protobuf's int32/uint32: ffmpeg's options overflow beyond
                raise BadProfile(f"profile {name!r}: {what} {value} is out of go-livepeer's range (at most {top})")
        codec = _enum(p.encoder, CODECS, "encoder", name)
        container = _enum(p.format, FORMATS, "format", name)
        h264 = _enum(p.profile, H264_PROFILES, "H.264 profile", name)
        if codec not in CARRIES[container]:
            raise BadProfile(
                f"profile {name!r}: {codec.upper()} cannot be carried in {'MPEG-TS' if container == 'mpegts' else 'MP4'}"
                f" (MPEG-TS carries H.264 and H.265; MP4 carries H.264, H.265 and VP9)"
            )
        if h264 and codec != "h264":
            raise BadProfile(f"profile {name!r}: H.264 profile {h264} given for a {codec.upper()} encode")
        for what, size in (("width", p.width), ("height", p.height)):
            if not 0 < size <= MAX_SIDE:
                raise BadProfile(f"profile {name!r}: {what} {size} must be above 0 and at most {MAX_SIDE}")
        if p.chromaFormat != 0:
            raise BadProfile(f"profile {name!r}: only 4:2:0 chroma is transcoded (chromaFormat {p.chromaFormat})")
        fps = None
        if p.fps:
            den = p.fpsDen or 1
            if p.fps / den > MAX_FPS:
                raise BadProfile(f"profile {name!r}: {p.fps}/{den} fps is above {MAX_FPS}")
            g = math.gcd(p.fps, den)
            fps = (p.fps // g, den // g)
            if max(fps) > _INT32:  # ffmpeg's rationals are 32-bit
                raise BadProfile(f"profile {name!r}: frame rate {p.fps}/{den} does not fit a 32-bit fraction")
        if p.gop == 0:
            gop: float | Literal["intra"] | None = None
        elif p.gop == GOP_INTRA_ONLY:
            gop = "intra"
        elif p.gop > 0:
            gop = p.gop / 1000
        else:
            raise BadProfile(f"profile {name!r}: gop {p.gop} ms is invalid (0 = default, -1 = intra-only, else > 0)")
        out.append(
            Rendition(
                index=i, name=name, width=_even(p.width), height=_even(p.height), bitrate=p.bitrate, fps=fps,
                codec=codec,  # type: ignore[arg-type]
                container=container,  # type: ignore[arg-type]
                h264_profile="high" if h264 == "constrained_high" else h264,
                no_b_frames=h264 in ("constrained_high", "baseline") or gop == "intra",
                gop=gop,
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the hardware probe found working on this worker's GPU (nothing on a CPU worker)."""

    gpu: str = ""
    nvenc: frozenset[str] = frozenset()
    """Codecs NVENC really encoded (``h264``, ``h265``)."""
    nvdec: frozenset[str] = frozenset()
    """Codecs NVDEC really decoded (``h264``, ``h265``...)."""
    gpu_name: str = ""
    notes: tuple[str, ...] = field(default=())
    """What the probe learnt, for the heartbeat detail (``no NVENC on this GPU: encoding on the CPU``)."""

    @property
    def encoders(self) -> tuple[str, ...]:
        return tuple(NVENC_ENCODERS[c] for c in ("h264", "h265") if c in self.nvenc)

    @property
    def decoders(self) -> tuple[str, ...]:
        names = {"h264": "h264_cuvid", "h265": "hevc_cuvid", "vp8": "vp8_cuvid", "vp9": "vp9_cuvid"}
        return tuple(names[c] for c in ("h264", "h265", "vp8", "vp9") if c in self.nvdec)


@dataclass(frozen=True, slots=True)
class Accel:
    """Where one segment's work runs."""

    decode: Literal["cpu", "nvdec"]
    frames_on_gpu: bool
    """Decoded frames stay in GPU memory and are scaled there (scale_cuda): only with NVENC."""
    encoders: tuple[str, ...]
    """The ffmpeg encoder of each rendition, in order."""
    gpu: str = ""

    @property
    def uses_nvenc(self) -> bool:
        return any(e.endswith("_nvenc") for e in self.encoders)


def plan_accel(renditions: Sequence[Rendition], caps: Capabilities, source_codec: str = "h264") -> Accel:
    """NVENC for what it encodes, the CPU for the rest; NVDEC decodes whenever it works for the source codec.

    A GPU with NVDEC but no NVENC (H100, H200) decodes on NVDEC and encodes on the CPU.
    """
    encoders = tuple(NVENC_ENCODERS[r.codec] if r.codec in caps.nvenc else CPU_ENCODERS[r.codec] for r in renditions)
    nvdec = bool(caps.gpu) and source_codec in caps.nvdec
    on_gpu = nvdec and any(e.endswith("_nvenc") for e in encoders)
    return Accel(decode="nvdec" if nvdec else "cpu", frames_on_gpu=on_gpu, encoders=encoders, gpu=caps.gpu)


def check_budget(renditions: Sequence[Rendition], duration_ms: int, max_pixel_rate: float) -> None:
    """Refuse, before anything runs, a segment longer than :data:`MAX_SEGMENT_MS` or a ladder above ``max_pixel_rate``.

    The rate is Σ width × height × fps over the ladder (a profile keeping the source's rate counts at
    :data:`ASSUMED_FPS`), so a segment's work is at most its claimed duration × that rate.
    """
    if duration_ms > MAX_SEGMENT_MS:
        raise BadProfile(f"segment duration {duration_ms} ms is above {MAX_SEGMENT_MS} ms")
    rate = sum(r.width * r.height * (r.fps[0] / r.fps[1] if r.fps else ASSUMED_FPS) for r in renditions)
    if rate > max_pixel_rate:
        raise BadProfile(f"the ladder asks for {rate / 1e6:,.0f} million pixels per second, above this worker's "
                         f"{max_pixel_rate / 1e6:,.0f} million (BATON_TRANSCODE_MAX_PIXEL_RATE)")


def frame_budget(r: Rendition, duration_ms: int) -> int | None:
    """The most frames ``r`` may have for a segment that claims ``duration_ms``: 1.25 × that duration plus 1 s, at
    the rendition's rate (:data:`MAX_FPS` for one at the source's rate), plus one frame.

    A guard against a segment whose timestamps jump (the ``fps`` filter would fill the gap with copies, billed as
    pixels): more frames fail as lpms's ``Output frame count larger than expected``. The margin leaves room for a
    gateway whose playlist rounds segment durations. None without a duration to go by.
    """
    if duration_ms <= 0:
        return None
    fps = r.fps[0] / r.fps[1] if r.fps else MAX_FPS
    return math.ceil((duration_ms / 1000 * 1.25 + 1.0) * fps) + 1


def metric_label(r: Rendition) -> str:
    """A bounded label for a rendition's metrics (names are the gateway's to choose): ``720p``, or ``other``."""
    return f"{r.height}p" if r.height in _LABELS else "other"


def segment_timeout(minimum: float, duration_ms: int, deadline_left: float) -> float:
    """go-livepeer waits max(8 s, 4 × duration) for a transcoder; the job's deadline caps it."""
    return min(max(minimum, 4 * duration_ms / 1000), deadline_left)


_TS_VIDEO_TYPES = {0x1B: "h264", 0x24: "h265"}


def source_codec(segment: bytes) -> str:
    """The segment's video codec from its MPEG-TS program map (or MP4 sample entry), without running anything.

    It decides whether NVDEC can decode the segment; ``unknown`` when neither says (the CPU decodes it then).
    """
    if segment[:1] == b"\x47":
        for off in range(0, min(len(segment), 188 * 64) - 187, 188):
            pkt = segment[off:off + 188]
            if pkt[0] != 0x47 or not pkt[1] & 0x40:  # not a sync byte, or no section starts here
                continue
            start = 4 + (pkt[4] + 1 if pkt[3] & 0x20 else 0)  # skip the adaptation field
            if not pkt[3] & 0x10 or start >= 188:
                continue
            start += 1 + pkt[start]  # the pointer field
            if start + 12 > 188 or pkt[start] != 0x02:  # table 2: the program map
                continue
            section_end = min(188, start + 3 + ((pkt[start + 1] & 0x0F) << 8 | pkt[start + 2]) - 4)
            i = start + 12 + ((pkt[start + 10] & 0x0F) << 8 | pkt[start + 11])
            while i + 5 <= section_end:
                codec = _TS_VIDEO_TYPES.get(pkt[i])
                if codec:
                    return codec
                i += 5 + ((pkt[i + 3] & 0x0F) << 8 | pkt[i + 4])
        return "unknown"
    head = segment[:1 << 16]
    for tag, codec in ((b"avc1", "h264"), (b"hvc1", "h265"), (b"hev1", "h265"), (b"vp09", "vp9")):
        if tag in head:
            return codec
    return "unknown"
