"""Settings of the inference service (environment `BATON_INFERENCE_<NAME>`)."""

from __future__ import annotations

from typing import Annotated

from baton_common.config import CommonSettings, setting

__all__ = ["InferenceSettings"]


class InferenceSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7938
    triton_url: Annotated[
        str, setting("HTTP URL of the Triton Inference Server this instance drives (one per GPU).")
    ] = "http://127.0.0.1:8000"
    gpu: Annotated[str, setting("Host GPU id of the Triton this instance drives, reported in heartbeats; empty on the CPU.")] = ""

    def __post_init__(self) -> None:
        if not self.triton_url.startswith(("http://", "https://")):
            raise ValueError(f"BATON_INFERENCE_TRITON_URL must be an http(s) URL, got {self.triton_url!r}")
