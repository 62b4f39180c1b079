"""The transcode job: what a segment's ``JobRequest.params`` holds, and what its ``JobResult`` carries.

The negotiator sends one :class:`~.jobs.JobRequest` per ``/segment`` with
``kind="transcode"``, ``pipeline=TRANSCODE_PIPELINE``, the segment as ``body``
(up to ``INLINE_BODY_MAX``) or ``body_ref`` (``<job_id>/in`` in ``baton-bodies``),
and ``params = msgspec.to_builtins(TranscodeParams(...))``. The profiles are
go-livepeer's ``VideoProfile`` (``net/lp_rpc.proto``) field for field, with its
enum numbers, so the negotiator copies them from ``SegData.fullProfiles*``
without translating anything.

The reply is a :class:`~.jobs.JobResult` with one :class:`~.jobs.Output` per
profile, **in profile order**: ``name`` = the profile's name, ``content_type``
``video/mp2t`` or ``video/mp4``, the rendition inline in ``data`` (up to ``INLINE_BODY_MAX`` for the whole reply) or as
``ref`` (``<job_id>/out/<n>``), and ``pixels`` = frames × width × height of
what was encoded (what a gateway re-counts). ``units`` = Σ pixels, the figure
go-livepeer bills (price × Σ output pixels). Failures are a
:class:`~.jobs.JobError`: ``bad_input`` names the profile or says the segment
does not decode; ``busy`` (retryable) when the worker has no free slot or its
GPU's NVENC session limit is reached (go-livepeer's ``OrchestratorBusy``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "CHROMA_FORMATS",
    "CODECS",
    "FORMATS",
    "H264_PROFILES",
    "GOP_INTRA_ONLY",
    "MAX_SEGMENT_MS",
    "TRANSCODE_PIPELINE",
    "TranscodeParams",
    "VideoProfile",
]

TRANSCODE_PIPELINE = "transcode"
"""``JobRequest.pipeline`` and ``ModelState.pipeline`` of transcoding (``model_id`` is empty)."""

GOP_INTRA_ONLY = -1
"""go-livepeer's ``ffmpeg.GOPIntraOnly``: every frame a keyframe. ``gop`` 0 leaves the encoder's default."""

FORMATS = {0: "mpegts", 1: "mp4"}
"""``VideoProfile.Format``: MPEGTS = 0, MP4 = 1."""
CODECS = {0: "h264", 1: "h265", 2: "vp8", 3: "vp9"}
"""``VideoProfile.VideoCodec``: H264 = 0, H265 = 1, VP8 = 2, VP9 = 3."""
H264_PROFILES = {0: "", 1: "baseline", 2: "main", 3: "high", 4: "constrained_high"}
"""``VideoProfile.Profile``: ENCODER_DEFAULT = 0, H264_BASELINE = 1, H264_MAIN = 2, H264_HIGH = 3,
H264_CONSTRAINED_HIGH = 4."""

CHROMA_FORMATS = {0: "420", 1: "422", 2: "444"}
"""``VideoProfile.ChromaSubsampling``: CHROMA_420 = 0, CHROMA_422 = 1, CHROMA_444 = 2."""
MAX_SEGMENT_MS = 300_000
"""The longest segment (``SegData.duration``) taken: 5 minutes, go-livepeer's ``common.MaxDuration``."""

Size = Annotated[int, msgspec.Meta(ge=0, le=16384)]


class VideoProfile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One rendition, as go-livepeer's ``VideoProfile`` message: same names, same numbers."""

    name: str = ""
    """Rendition name (``P720p30fps16x9``); the Output of this rendition carries it."""
    width: Size = 0
    height: Size = 0
    bitrate: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Bits per second."""
    fps: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Frame rate numerator; 0 keeps the source's rate."""
    fpsDen: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Frame rate denominator; 0 means 1."""
    format: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Container: 0 MPEG-TS, 1 MP4 (:data:`FORMATS`)."""
    profile: Annotated[int, msgspec.Meta(ge=0)] = 0
    """H.264 profile (:data:`H264_PROFILES`); 0 = the encoder's default."""
    gop: int = 0
    """Keyframe interval in milliseconds; 0 = the encoder's default; -1 = intra-only (:data:`GOP_INTRA_ONLY`)."""
    encoder: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Codec (:data:`CODECS`): 0 H.264, 1 H.265, 2 VP8, 3 VP9."""
    colorDepth: int = 0
    chromaFormat: int = 0
    """0 = 4:2:0 (the only one transcoded; others are refused as bad input)."""
    quality: int = 0


class TranscodeParams(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``JobRequest.params`` of a transcode job."""

    profiles: tuple[VideoProfile, ...]
    """The renditions to produce, in the gateway's order (``SegData``'s highest non-empty fullProfiles)."""
    seq: int = 0
    """``SegData.seq``, for logs."""
    duration_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    """``SegData.duration``; the worker's per-segment timeout grows with it (4 × duration, as go-livepeer)."""
    manifest_id: str = ""
    """``SegData.manifestId`` as text, for logs."""
