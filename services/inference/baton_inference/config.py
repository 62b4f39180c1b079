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
    state_dir: Annotated[
        str, setting("Folder for the demo set (built there once, offchain with no -aiModels); empty: ~/.baton/inference.")
    ] = ""
    memory_budget: Annotated[
        int,
        setting("Bytes the warm models may use together; 0: the GPU's memory (NVML), or the host's RAM on the CPU.", ge=0),
    ] = 0
    memory_headroom: Annotated[
        float, setting("Share of the budget kept free (activations, CUDA context); 0.1 = 10 %.", ge=0.0, lt=1.0)
    ] = 0.1
    load_timeout: Annotated[
        float,
        setting("Seconds a model may take to load and warm up; a slower one is unloaded and not advertised.", gt=0),
    ] = 300.0
    watch_interval: Annotated[
        float, setting("Seconds between two checks that Triton still serves each advertised model.", gt=0, le=5)
    ] = 1.0
    max_image_pixels: Annotated[
        int, setting("Largest input image (width x height) a model takes; a larger one is refused as bad input.", ge=1)
    ] = 4096 * 4096
    max_audio_seconds: Annotated[
        int, setting("Longest audio audio-to-text transcribes, in seconds; a longer one is refused as bad input.", ge=1)
    ] = 4 * 3600

    batch_gather_ms: Annotated[
        float,
        setting("Most a text-to-image job waits, in ms, for the rest of a burst while its model is idle, so that "
                "they go to Triton as one batch (the wait is a tenth of the model's last batch, up to this); 0: no wait.",
                ge=0, le=1000),
    ] = 50.0

    def __post_init__(self) -> None:
        if not self.triton_url.startswith(("http://", "https://")):
            raise ValueError(f"BATON_INFERENCE_TRITON_URL must be an http(s) URL, got {self.triton_url!r}")
