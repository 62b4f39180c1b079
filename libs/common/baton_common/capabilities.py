"""go-livepeer's capability ids, the AI pipelines they stand for, and the capability bit strings.

Spec/livepeer-wire.md section 6. Every service that names a pipeline (the
negotiator's endpoints and capabilities, pricing's per-model prices, the
inference workers' adverts) takes it from here, so a pipeline has one id.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = [
    "BYOC",
    "DEFAULT_CAPABILITIES",
    "LIVE_VIDEO_TO_VIDEO",
    "PIPELINES",
    "Pipeline",
    "bitstring",
    "manifest_id",
    "pipeline_by_capability",
    "pipeline_by_name",
]


class Pipeline(msgspec.Struct, frozen=True):
    """One AI pipeline: its name (``-aiModels`` ``pipeline``), path, capability id and billed units."""

    name: str
    capability: int
    path: str
    units: str
    """How go-livepeer bills it (spec section 6); the negotiator computes the units."""
    multipart: bool = False


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline("text-to-image", 27, "/text-to-image", "height x width x num_images_per_prompt"),
    Pipeline("image-to-image", 28, "/image-to-image", "input height x width x num_images_per_prompt", True),
    Pipeline("image-to-video", 29, "/image-to-video", "height x width x 25 frames", True),
    Pipeline("upscale", 30, "/upscale", "input height x width", True),
    Pipeline("audio-to-text", 31, "/audio-to-text", "whole seconds x 1000", True),
    Pipeline("segment-anything-2", 32, "/segment-anything-2", "input height x width", True),
    Pipeline("llm", 33, "/llm", "max_tokens"),
    Pipeline("image-to-text", 34, "/image-to-text", "input height x width", True),
    Pipeline("live-video-to-video", 35, "/live-video-to-video", "1280 x 720 x 30 per second"),
    Pipeline("text-to-speech", 36, "/text-to-speech", "1000 x characters of text"),
)

LIVE_VIDEO_TO_VIDEO = 35
BYOC = 37
"""Bring-your-own-container capability; its constraint is a name, not a model id."""

DEFAULT_CAPABILITIES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 26)
"""What a go-livepeer orchestrator without a transcoder advertises (capacity 1 each); gateways
require their own bits to be a subset of ours, so these are always advertised."""

_BY_NAME = {p.name: p for p in PIPELINES}
_BY_CAPABILITY = {p.capability: p for p in PIPELINES}


def pipeline_by_name(name: str) -> Pipeline:
    """The pipeline called ``name``; KeyError naming the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(_BY_NAME)}") from None


def pipeline_by_capability(capability: int) -> Pipeline | None:
    return _BY_CAPABILITY.get(capability)


def manifest_id(capability: int, model_id: str) -> str:
    """The batch AI balance key's manifest: ``"<capId>_<model_id>"``."""
    return f"{capability}_{model_id}"


def bitstring(capabilities: Iterable[int]) -> list[int]:
    """Capability c sets bit c % 64 of word c // 64 (``Capabilities.bitstring``)."""
    words: list[int] = []
    for capability in capabilities:
        if capability < 0:
            raise ValueError(f"capability ids are not negative, got {capability}")
        word, bit = divmod(capability, 64)
        while len(words) <= word:
            words.append(0)
        words[word] |= 1 << bit
    return words
