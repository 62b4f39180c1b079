"""Request types of the JSON AI pipelines, written from ai-runner's OpenAPI (its defaults are what jobs run with).

Only the fields the negotiator reads are checked here; the rest travel to the
worker as the gateway sent them (the worker validates the full request).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["JSON_TYPES", "MULTIPART_TYPES", "LLMMessage", "LLMRequest", "TextToImageParams", "TextToSpeechParams"]

Positive = Annotated[int, msgspec.Meta(ge=1, le=16384)]


class TextToImageParams(msgspec.Struct, kw_only=True):
    prompt: str
    model_id: str = ""
    loras: str = ""
    height: Positive = 576
    width: Positive = 1024
    guidance_scale: float = 7.5
    negative_prompt: str = ""
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Annotated[int, msgspec.Meta(ge=1)] = 50
    num_images_per_prompt: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1

    def units(self) -> int:
        return self.height * self.width * self.num_images_per_prompt


class LLMMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str


class LLMRequest(msgspec.Struct, kw_only=True):
    messages: Annotated[list[LLMMessage], msgspec.Meta(min_length=1)]
    model: str = ""
    temperature: float = 0.7
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 256
    top_p: float = 1.0
    top_k: int = -1
    stream: bool = False

    @property
    def model_id(self) -> str:
        return self.model

    def units(self) -> int:
        return self.max_tokens


class TextToSpeechParams(msgspec.Struct, kw_only=True):
    model_id: str = ""
    text: str = ""
    description: str = ("A male speaker delivers a slightly expressive and animated speech with a moderate speed "
                        "and pitch.")

    def units(self) -> int:
        return 1000 * len(self.text)


JSON_TYPES: dict[str, type] = {
    "text-to-image": TextToImageParams,
    "llm": LLMRequest,
    "text-to-speech": TextToSpeechParams,
}


# --- multipart pipelines (form fields; the file is the job's body) -------------------------


class ImageToImageParams(msgspec.Struct, kw_only=True):
    prompt: str
    model_id: str = ""
    loras: str = ""
    strength: float = 0.8
    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.5
    negative_prompt: str = ""
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Annotated[int, msgspec.Meta(ge=1)] = 100
    num_images_per_prompt: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1

    def units_for(self, width: int, height: int) -> int:
        return width * height * self.num_images_per_prompt


class ImageToVideoParams(msgspec.Struct, kw_only=True):
    model_id: str = ""
    height: Positive = 576
    width: Positive = 1024
    fps: Annotated[int, msgspec.Meta(ge=1)] = 6
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Annotated[int, msgspec.Meta(ge=1)] = 25

    def units_for(self, width: int, height: int) -> int:
        return self.height * self.width * 25


class UpscaleParams(msgspec.Struct, kw_only=True):
    prompt: str
    model_id: str = ""
    safety_check: bool = True
    seed: int | None = None
    num_inference_steps: Annotated[int, msgspec.Meta(ge=1)] = 75

    def units_for(self, width: int, height: int) -> int:
        return width * height


class AudioToTextParams(msgspec.Struct, kw_only=True):
    model_id: str = ""
    return_timestamps: str = "true"
    metadata: str = "{}"

    def units_for(self, width: int, height: int) -> int:
        return 0  # whole seconds x 1000: the worker measures the audio and reports the units


class SegmentAnything2Params(msgspec.Struct, kw_only=True):
    model_id: str = ""
    point_coords: str | None = None
    point_labels: str | None = None
    box: str | None = None
    mask_input: str | None = None
    multimask_output: bool = True
    return_logits: bool = True
    normalize_coords: bool = True

    def units_for(self, width: int, height: int) -> int:
        return width * height


class ImageToTextParams(msgspec.Struct, kw_only=True):
    prompt: str = ""
    model_id: str = ""

    def units_for(self, width: int, height: int) -> int:
        return width * height


MULTIPART_TYPES: dict[str, tuple[type, str]] = {
    "image-to-image": (ImageToImageParams, "image"),
    "image-to-video": (ImageToVideoParams, "image"),
    "upscale": (UpscaleParams, "image"),
    "audio-to-text": (AudioToTextParams, "audio"),
    "segment-anything-2": (SegmentAnything2Params, "image"),
    "image-to-text": (ImageToTextParams, "image"),
}
"""Each multipart pipeline's form fields and the name of its file field."""
