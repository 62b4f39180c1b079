"""The warm-model plan: which Triton model serves each (pipeline, model_id), how big it is, whether it fits.

Pure logic: no Triton, NATS or torch here.

Capacity onto Triton: ``capacity`` concurrent jobs of a model become
``capacity`` Triton instances (each a Python stub process holding its own
copy of the weights), except for the pipelines that batch
(:data:`BATCHING`): those get one instance whose dynamic batcher takes up to
``capacity`` requests into one forward pass (requests with the same settings
run as one batch). Memory is sized accordingly: the weights times the
instances.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton_common.errors import ConfigError

__all__ = [
    "AUDIO_LIMIT_KEY",
    "BATCHING",
    "DECOUPLED",
    "ModelSpec",
    "check_budget",
    "estimate_bytes",
    "human",
    "instances",
    "resolve_weights",
    "triton_config",
    "triton_name",
    "with_audio_limit",
]

BATCHING = frozenset({"text-to-image"})
"""Pipelines whose model.py runs a dynamic batch as one forward pass."""
DECOUPLED = frozenset({"llm"})
"""Pipelines that stream: Triton's decoupled mode, served through ``generate_stream``."""
AUDIO_LIMIT_KEY = "baton_paid_seconds"
"""The request field (set by the worker, never the gateway's) with the seconds an audio-to-text job may decode."""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx")
RUNTIME_OVERHEAD = 1.2
"""Loaded size over weight-file size (activations and buffers on top of the weights)."""
PIPELINES_SERVED = ("text-to-image", "image-to-image", "llm", "image-to-text", "text-to-speech", "audio-to-text",
                    "upscale", "image-to-video", "segment-anything-2")
"""Pipelines with a Triton model in ``triton_models/`` today."""


@dataclass(frozen=True)
class ModelSpec:
    """One model this worker is asked to serve."""

    pipeline: str
    model_id: str
    warm: bool
    capacity: int
    weights: Path
    demo: bool = False

    @property
    def name(self) -> str:
        return triton_name(self.pipeline, self.model_id)

    @property
    def instances(self) -> int:
        return instances(self.pipeline, self.capacity)

    def estimate(self) -> int:
        """Bytes the loaded model is expected to take: weights x overhead x instances."""
        return int(estimate_bytes(self.weights) * RUNTIME_OVERHEAD) * self.instances


def triton_name(pipeline: str, model_id: str) -> str:
    """A Triton model name for (pipeline, model_id): readable, unique, URL-safe."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_")[:60]
    digest = hashlib.sha256(f"{pipeline}\0{model_id}".encode()).hexdigest()[:8]
    return f"{pipeline.replace('-', '_')}__{slug}__{digest}"


def instances(pipeline: str, capacity: int) -> int:
    return 1 if pipeline in BATCHING else max(1, capacity)


def resolve_weights(models_dir: Path, model_id: str) -> Path | None:
    """The folder holding ``model_id``'s weights in ``models_dir``, or None.

    The Hugging Face hub cache layout (``models--org--name/snapshots/<rev>``,
    the revision ``refs/main`` names, else the newest) as ai-runner uses it,
    or a plain ``save_pretrained`` folder at ``models_dir/org/name``.
    """
    cache = models_dir / ("models--" + model_id.replace("/", "--"))
    snapshots = cache / "snapshots"
    if snapshots.is_dir():
        ref = cache / "refs" / "main"
        if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
            return snapshots / ref.read_text().strip()
        revisions = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        if revisions:
            return revisions[-1]
    plain = models_dir / model_id
    if plain.is_dir() and any(plain.iterdir()):
        return plain
    return None


def estimate_bytes(folder: Path) -> int:
    """The size of the weight files under ``folder`` (links followed, as the hub cache uses them)."""
    total = 0
    for path in folder.rglob("*"):
        if path.suffix in WEIGHT_SUFFIXES and path.is_file():
            total += path.stat().st_size
    return total


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def check_budget(specs: list[ModelSpec], budget: int, headroom: float, *, where: str) -> int:
    """The bytes the warm models need; ConfigError naming every model and its size when over budget."""
    warm = [s for s in specs if s.warm]
    need = sum(s.estimate() for s in warm)
    usable = int(budget * (1 - headroom))
    if need > usable:
        listed = ", ".join(f"{s.pipeline} {s.model_id} {human(s.estimate())}" for s in warm)
        raise ConfigError(
            f"{where}: the warm models need {human(need)} together ({listed}) but {human(usable)} is available "
            f"({human(budget)} budget less {headroom:.0%} headroom); make some cold (warm: false), lower capacity, "
            "or raise BATON_INFERENCE_MEMORY_BUDGET"
        )
    return need


def triton_config(spec: ModelSpec, *, gpu: bool, max_pixels: int, max_audio_seconds: int = 4 * 3600) -> dict[str, Any]:
    """The model configuration sent with Triton's load API (the config override)."""
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    parameters = {
        "weights": {"string_value": str(spec.weights)},
        "model_id": {"string_value": spec.model_id},
        "max_pixels": {"string_value": str(max_pixels)},
        "max_audio_seconds": {"string_value": str(max_audio_seconds)},
    }
    if spec.pipeline in DECOUPLED:
        return {
            "backend": "python",
            "max_batch_size": 0,
            "model_transaction_policy": {"decoupled": True},
            "input": [{"name": "request", "data_type": "TYPE_STRING", "dims": [1]}],
            "output": [{"name": "chunk", "data_type": "TYPE_STRING", "dims": [1]}],
            "instance_group": [{"count": spec.instances, "kind": kind}],
            "parameters": parameters,
        }
    return {
        "backend": "python",
        "max_batch_size": max(1, spec.capacity),
        "dynamic_batching": {"max_queue_delay_microseconds": 1000},
        "input": [
            {"name": "request", "data_type": "TYPE_UINT8", "dims": [-1], "allow_ragged_batch": True},
            {"name": "body", "data_type": "TYPE_UINT8", "dims": [-1], "allow_ragged_batch": True, "optional": True},
        ],
        "output": [
            {"name": "response", "data_type": "TYPE_UINT8", "dims": [-1]},
            {"name": "error", "data_type": "TYPE_UINT8", "dims": [-1]},
        ],
        "instance_group": [{"count": spec.instances, "kind": kind}],
        "parameters": parameters,
    }


def with_audio_limit(pipeline: str, params: dict[str, Any], max_units: int) -> dict[str, Any]:
    """The runner's request: ``params`` with the gateway's own ``AUDIO_LIMIT_KEY`` dropped, and for an
    audio-to-text job the seconds it may decode (``JobRequest.max_units`` / 1000: what the negotiator reserved
    from the container's duration, with its slack) in it. The runner refuses audio that decodes longer: a
    container that lies about its duration gets no work it did not pay for."""
    request = {k: v for k, v in params.items() if k != AUDIO_LIMIT_KEY}
    if pipeline == "audio-to-text" and max_units > 0:
        request[AUDIO_LIMIT_KEY] = max_units / 1000
    return request
