"""Request types of the JSON AI pipelines, written from ai-runner's OpenAPI (its defaults are what jobs run with).

Only the fields the negotiator reads are checked here; the rest travel to the
worker as the gateway sent them (the worker validates the full request).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["LLMMessage", "LLMRequest", "TextToImageParams", "TextToSpeechParams", "JSON_TYPES"]

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
