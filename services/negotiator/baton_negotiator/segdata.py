"""A SegData's profiles and duration, checked as go-livepeer's ``verifySegCreds`` parses them, and carried
to the transcode contract."""

from __future__ import annotations

from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.transcode import (
    CHROMA_FORMATS,
    CODECS,
    FORMATS,
    H264_PROFILES,
    MAX_SEGMENT_MS,
    VideoProfile,
)

from .errors import BadSegmentHeader

__all__ = ["check_segment", "contract_profile"]


def check_segment(seg: lp_rpc_pb2.SegData) -> None:
    """The profiles and duration go-livepeer's ``verifySegCreds`` parses, refused (403) with its error texts."""
    if not 0 <= seg.duration <= MAX_SEGMENT_MS:
        raise BadSegmentHeader("invalid duration")
    for p in seg.fullProfiles3 or seg.fullProfiles2 or seg.fullProfiles:
        if p.format not in FORMATS:
            raise BadSegmentHeader("unknown VideoProfile format for protobufs")
        if p.profile not in H264_PROFILES:
            raise BadSegmentHeader("unknown VideoProfile profile for protobufs")
        if p.encoder not in CODECS:
            raise BadSegmentHeader("unknown VideoProfile encoder for protobufs")
        if p.chromaFormat not in CHROMA_FORMATS:
            raise BadSegmentHeader("unknown VideoProfile ChromaFormat")


def contract_profile(profile: lp_rpc_pb2.VideoProfile) -> VideoProfile:
    """go-livepeer's VideoProfile as the transcode contract carries it: same field names, same enum numbers."""
    return VideoProfile(name=profile.name, width=profile.width, height=profile.height, bitrate=profile.bitrate,
                        fps=profile.fps, fpsDen=profile.fpsDen, format=profile.format, profile=profile.profile,
                        gop=profile.gop, encoder=profile.encoder, colorDepth=profile.colorDepth,
                        chromaFormat=profile.chromaFormat, quality=profile.quality)
