"""The AI pipelines' request and response bodies, as ai-runner's OpenAPI defines them.

The negotiator decodes a gateway's request into the pipeline's ``*Params``
type, sends its fields as ``JobRequest.params`` (the uploaded file of a
multipart pipeline goes as the job's body, not in ``params``), and the
inference worker answers with the pipeline's response type encoded as JSON in
``JobResult.data``. Field names, types and defaults are ai-runner's; a
multipart form's values arrive as strings, so decode with :func:`params`
(msgspec's lax mode turns ``"0.5"`` into ``0.5``). Unknown fields are
ignored, as ai-runner does.

These are request and response bodies, not bus messages: they carry no tag.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

__all__ = [
    "FILE_FIELD",
    "PARAMS",
    "RESPONSES",
    "AudioResponse",
    "AudioToTextParams",
    "Chunk",
    "ImageResponse",
    "ImageToImageParams",
    "ImageToTextParams",
    "ImageToTextResponse",
    "ImageToVideoParams",
    "LLMChoice",
    "LLMMessage",
    "LLMParams",
    "LLMResponse",
    "LLMTokenUsage",
    "MasksResponse",
    "Media",
    "MediaURL",
    "SegmentAnything2Params",
    "TextResponse",
    "TextToImageParams",
    "TextToSpeechParams",
    "UpscaleParams",
    "VideoResponse",
    "params",
]

P = TypeVar("P", bound=msgspec.Struct)

Positive = Annotated[int, msgspec.Meta(ge=1)]
Steps = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Images = Annotated[int, msgspec.Meta(ge=1, le=16)]
Side = Annotated[int, msgspec.Meta(ge=8, le=4096)]
"""Pixels along one side of an image ai-runner makes; the worker refuses larger ones."""


class _Body(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


# -- requests ----------------------------------------------------------------


class TextToImageParams(_Body, frozen=True, kw_only=True):
    prompt: str
    model_id: str = ""
    loras: str = ""
    height: Side = 576
    width: Side = 1024
    guidance_scale: float = 7.5
    negative_prompt: str = ""
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Steps = 50
    num_images_per_prompt: Images = 1


class ImageToImageParams(_Body, frozen=True, kw_only=True):
    """Multipart: ``image`` is the job's body."""

    prompt: str
    model_id: str = ""
    loras: str = ""
    strength: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.8
    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.5
    negative_prompt: str = ""
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Steps = 100
    num_images_per_prompt: Images = 1


class ImageToVideoParams(_Body, frozen=True, kw_only=True):
    """Multipart: ``image`` is the job's body."""

    model_id: str = ""
    height: Side = 576
    width: Side = 1024
    fps: Annotated[int, msgspec.Meta(ge=1, le=60)] = 6
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Steps = 25


class UpscaleParams(_Body, frozen=True, kw_only=True):
    """Multipart: ``image`` is the job's body."""

    prompt: str
    model_id: str = ""
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Steps = 75


class AudioToTextParams(_Body, frozen=True, kw_only=True):
    """Multipart: ``audio`` is the job's body."""

    model_id: str = ""
    return_timestamps: str = "true"
    """``true``/``false`` for segment timestamps, ``word`` for word timestamps (ai-runner's form value)."""
    metadata: str = "{}"


class SegmentAnything2Params(_Body, frozen=True, kw_only=True):
    """Multipart: ``image`` is the job's body; coordinates are JSON text, as in ai-runner's form."""

    model_id: str = ""
    point_coords: str | None = None
    point_labels: str | None = None
    box: str | None = None
    mask_input: str | None = None
    multimask_output: bool = True
    return_logits: bool = True
    normalize_coords: bool = True


class LLMMessage(_Body, frozen=True, kw_only=True):
    role: str
    content: str


class LLMParams(_Body, frozen=True, kw_only=True):
    """ai-runner's ``LLMRequest``."""

    messages: Annotated[tuple[LLMMessage, ...], msgspec.Meta(min_length=1)]
    model: str = ""
    temperature: Annotated[float, msgspec.Meta(ge=0.0)] = 0.7
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=32768)] = 256
    top_p: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 1.0
    top_k: int = -1
    stream: bool = False


class ImageToTextParams(_Body, frozen=True, kw_only=True):
    """Multipart: ``image`` is the job's body."""

    prompt: str = ""
    model_id: str = ""


class TextToSpeechParams(_Body, frozen=True, kw_only=True):
    model_id: str = ""
    text: str = ""
    description: str = "A male speaker delivers a slightly expressive and animated speech with a moderate speed and pitch."


# -- responses ---------------------------------------------------------------


class Media(_Body, frozen=True, kw_only=True):
    url: str
    """A ``data:`` URL (``data:image/png;base64,...``), as ai-runner returns."""
    seed: int
    nsfw: bool


class MediaURL(_Body, frozen=True, kw_only=True):
    url: str


class ImageResponse(_Body, frozen=True, kw_only=True):
    images: tuple[Media, ...]


class VideoResponse(_Body, frozen=True, kw_only=True):
    frames: tuple[tuple[Media, ...], ...]
    """One list of frames per video (Baton's worker: one entry per video, the MP4 itself)."""
    images: tuple[Media, ...] = ()
    """One MP4 per video, as go-livepeer's orchestrator answers image-to-video to a gateway (Baton's addition)."""


class Chunk(_Body, frozen=True, kw_only=True):
    timestamp: tuple[Any, ...]
    """``[start, end]`` in seconds (``end`` may be null for the last chunk)."""
    text: str


class TextResponse(_Body, frozen=True, kw_only=True):
    text: str
    chunks: tuple[Chunk, ...]


class MasksResponse(_Body, frozen=True, kw_only=True):
    masks: str
    """JSON text of the nested lists, as ai-runner returns them."""
    scores: str
    logits: str


class LLMTokenUsage(_Body, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LLMChoice(_Body, frozen=True, kw_only=True):
    index: int
    finish_reason: str = ""
    delta: LLMMessage | None = None
    message: LLMMessage | None = None


class LLMResponse(_Body, frozen=True, kw_only=True):
    """A whole answer, or (streamed) one SSE event's data with ``delta`` set."""

    id: str
    model: str
    created: int
    usage: LLMTokenUsage
    choices: tuple[LLMChoice, ...]


class ImageToTextResponse(_Body, frozen=True, kw_only=True):
    text: str


class AudioResponse(_Body, frozen=True, kw_only=True):
    audio: MediaURL


PARAMS: dict[str, type[msgspec.Struct]] = {
    "text-to-image": TextToImageParams,
    "image-to-image": ImageToImageParams,
    "image-to-video": ImageToVideoParams,
    "upscale": UpscaleParams,
    "audio-to-text": AudioToTextParams,
    "segment-anything-2": SegmentAnything2Params,
    "llm": LLMParams,
    "image-to-text": ImageToTextParams,
    "text-to-speech": TextToSpeechParams,
}
"""Each pipeline's request type (live-video-to-video is a stream, not a job)."""

RESPONSES: dict[str, type[msgspec.Struct]] = {
    "text-to-image": ImageResponse,
    "image-to-image": ImageResponse,
    "image-to-video": VideoResponse,
    "upscale": ImageResponse,
    "audio-to-text": TextResponse,
    "segment-anything-2": MasksResponse,
    "llm": LLMResponse,
    "image-to-text": ImageToTextResponse,
    "text-to-speech": AudioResponse,
}

FILE_FIELD: dict[str, str] = {
    "image-to-image": "image",
    "image-to-video": "image",
    "upscale": "image",
    "audio-to-text": "audio",
    "segment-anything-2": "image",
    "image-to-text": "image",
}
"""The multipart field of each pipeline whose file is the job's body."""


def params(pipeline: str, fields: dict[str, Any], type_: type[P] | None = None) -> P:
    """``fields`` as ``pipeline``'s request type; msgspec.ValidationError names the bad field."""
    cls = type_ or PARAMS[pipeline]
    return msgspec.convert(fields, cls, strict=False)  # type: ignore[return-value]
