"""What a job is billed (spec section 6) and what a segment is estimated to cost, from the request as it runs.

The request types are the contract's (``baton_common.schemas.ai``, written from
ai-runner's OpenAPI): their defaults are what the job runs with, so an LLM
request without ``max_tokens`` runs and bills 256. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from baton_common.proto import lp_rpc_pb2
from baton_common.schemas import ai

__all__ = ["AUDIO_MIN_UNITS", "MIN_SEGMENT_MS", "audio_max_units", "billed_units", "job_params", "model_of", "segment_estimate"]

AUDIO_MIN_UNITS = 1000
"""audio-to-text bills whole seconds x 1000; a clip under a second bills one second (go-livepeer refuses
it with 400 ``Unable to calculate duration``; Baton serves it at the minimum unit instead of for free)."""
ESTIMATE_SLACK = 1.5
"""An MP3 or ADTS AAC file carries no duration: ffprobe estimates it from the bitrate, and a VBR file may run
longer. It may decode to ESTIMATE_SLACK x the reserved seconds + ESTIMATE_SLACK_MS and is billed what it decoded."""
ESTIMATE_SLACK_MS = 10_000
DEFAULT_FPS = 60
"""The frame rate go-livepeer gateways assume for a profile that names none."""
MIN_SEGMENT_MS = 2000
"""The shortest segment an estimate assumes: go-livepeer gateways cut 2 s segments, and SegData.duration is the
gateway's word (0 would estimate, and reserve, nothing for any number of output pixels)."""


def model_of(params: msgspec.Struct) -> str:
    """The request's model: ``model`` for the LLM, ``model_id`` for the others."""
    return str(getattr(params, "model", None) or getattr(params, "model_id", "") or "")


def billed_units(pipeline: str, params: Any, width: int = 0, height: int = 0,  # noqa: ANN401
                 audio_ms: int = 0) -> int:
    """The units (spec section 6) a job is billed; ``width`` x ``height`` is the input image's size.

    audio-to-text: whole seconds x 1000 of ``audio_ms`` (the upload's duration as ffprobe reads it, before the
    job runs), at least AUDIO_MIN_UNITS; the job then bills what the worker reports, at least that minimum.
    """
    match params:
        case ai.TextToImageParams():
            return params.height * params.width * params.num_images_per_prompt
        case ai.ImageToImageParams():
            return width * height * params.num_images_per_prompt
        case ai.ImageToVideoParams():
            return params.height * params.width * 25
        case ai.UpscaleParams() | ai.SegmentAnything2Params() | ai.ImageToTextParams():
            return width * height
        case ai.AudioToTextParams():
            # Whole seconds, rounded down as a go-livepeer gateway pays them (int64(DurSecs) * 1000); at least 1 s.
            return max(max(audio_ms, 0) // 1000 * 1000, AUDIO_MIN_UNITS)
        case ai.LLMParams():
            return params.max_tokens
        case ai.TextToSpeechParams():
            return 1000 * len(params.text)
    raise ValueError(f"no billing for pipeline {pipeline}")


def job_params(params: msgspec.Struct) -> dict[str, Any]:
    """The request as the job runs it, defaults included (the contract's types omit them when encoding)."""
    fields = {name: getattr(params, name) for name in params.__struct_fields__}
    return msgspec.json.decode(msgspec.json.encode(fields))  # JSON's types: a tuple becomes a list


def segment_estimate(seg: lp_rpc_pb2.SegData) -> int:
    """The output pixels a go-livepeer gateway pays ahead for: sum over the profiles of
    width x height x ceil(fps) (60 if unset) x ceil(duration in seconds), the duration at least MIN_SEGMENT_MS."""
    seconds = math.ceil(max(seg.duration, MIN_SEGMENT_MS) / 1000)
    total = 0
    for p in seg.fullProfiles3 or seg.fullProfiles2 or seg.fullProfiles:
        fps = math.ceil(p.fps / p.fpsDen) if p.fps and p.fpsDen > 0 else (p.fps or DEFAULT_FPS)
        total += max(p.width, 0) * max(p.height, 0) * fps * seconds
    return total


def audio_max_units(units: int, estimated: bool) -> int:
    """The most audio (ms) a job reserved at ``units`` may decode: the container's duration as reserved, with
    the second its rounding cut off (a file that decodes longer lied about its length: the worker refuses it;
    it is billed at most ``units``); for an ``estimated`` duration (MP3, ADTS AAC) the estimate's slack, billed
    as decoded."""
    if estimated:
        return math.ceil(units * ESTIMATE_SLACK) + ESTIMATE_SLACK_MS
    return units + 1000
