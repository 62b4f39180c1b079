"""The warm-model manager: load and warm up through Triton, watch, withdraw, reload.

- At start every warm model is loaded (Triton's load API with the config
  override) and warmed up with one real request; its load time and memory
  (NVML on a GPU, the stub processes' RSS on the CPU) are recorded.
- A model is advertised only while ``ready``. One that took longer than the
  load limit is unloaded and marked ``slow``: never advertised.
- Every ``watch_interval`` seconds Triton is asked whether it still serves
  each ready model; one that it does not (Triton restarted or killed, the
  model unloaded or failed) is withdrawn at once (``on_change`` makes the
  advert put immediately), then reloaded and advertised again once warm.
- ``add`` and ``remove`` change the set live (``baton models load|unload``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from baton_common.schemas.workers import ModelState

from .domain import DECOUPLED, ModelSpec, triton_config
from .errors import InferenceError, RunnerFailed
from .memory import Gpu, stub_rss
from .triton import Triton

__all__ = ["Entry", "WarmModels", "tiny_png", "tiny_wav"]

log = logging.getLogger("baton.inference.models")


def tiny_png(side: int = 32) -> bytes:
    """A grey ``side`` x ``side`` RGB PNG, made without an imaging library (the warm-up image)."""
    raw = b"".join(b"\x00" + b"\x80" * (3 * side) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def tiny_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """``seconds`` of silence as a 16-bit mono WAV (the audio warm-up)."""
    frames = int(seconds * rate)
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + 2 * frames, b"WAVE", b"fmt ", 16, 1, 1, rate, 2 * rate,
                         2, 16, b"data", 2 * frames)
    return header + b"\x00\x00" * frames


WARM_UP: dict[str, tuple[dict[str, object], bytes]] = {
    "text-to-image": ({"prompt": "warm-up", "height": 64, "width": 64, "num_inference_steps": 1, "seed": 0}, b""),
    "image-to-image": ({"prompt": "warm-up", "num_inference_steps": 2, "strength": 0.5, "seed": 0}, tiny_png(64)),
    "llm": ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}, b""),
    "image-to-text": ({}, tiny_png()),
    "text-to-speech": ({"text": "hi"}, b""),
    "audio-to-text": ({"return_timestamps": "true"}, tiny_wav()),
    "upscale": ({"prompt": "warm-up", "num_inference_steps": 1, "seed": 0}, tiny_png(16)),
    "image-to-video": ({"height": 64, "width": 64, "num_inference_steps": 1, "seed": 0}, tiny_png(64)),
    "segment-anything-2": ({"point_coords": "[[16, 16]]", "point_labels": "[1]"}, tiny_png()),
}


@dataclass
class Entry:
    spec: ModelSpec
    state: str = "cold"
    """cold (not loaded), loading, ready, slow (took too long), failed, lost (Triton dropped it)."""
    load_seconds: float = 0.0
    memory_bytes: int = 0
    in_use: int = 0
    error: str = ""
    retry_at: float = 0.0
    jobs: int = field(default=0)

    def advert(self, runner_version: str) -> ModelState:
        return ModelState(
            pipeline=self.spec.pipeline, model_id=self.spec.model_id, warm=True, capacity=self.spec.capacity,
            in_use=self.in_use, runner_version=runner_version, load_seconds=round(self.load_seconds, 3),
            memory_bytes=self.memory_bytes, demo=self.spec.demo,
        )


class WarmModels:
    def __init__(
        self, triton: Triton, *, gpu: Gpu, load_timeout: float, watch_interval: float, max_pixels: int,
        on_change: Callable[[], None], retry_after: float = 5.0, max_audio_seconds: int = 4 * 3600,
    ) -> None:
        self.triton = triton
        self.gpu = gpu
        self.load_timeout = load_timeout
        self.watch_interval = watch_interval
        self.max_pixels = max_pixels
        self.max_audio_seconds = max_audio_seconds
        self.on_change = on_change
        self.retry_after = retry_after
        self.entries: dict[tuple[str, str], Entry] = {}
        self.triton_up = False
        self._lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[Entry]] = set()

    # -- what is served ----------------------------------------------------

    def find(self, pipeline: str, model_id: str) -> Entry | None:
        return self.entries.get((pipeline, model_id))

    def advertised(self) -> tuple[ModelState, ...]:
        version = f"triton-{self.triton.version}" if self.triton.version else "triton"
        return tuple(e.advert(version) for e in self.entries.values() if e.state == "ready")

    # -- loading -----------------------------------------------------------

    async def start(self, specs: list[ModelSpec]) -> None:
        """Load and warm up every warm model, one at a time (so each one's memory is its own)."""
        for spec in specs:
            self.entries[(spec.pipeline, spec.model_id)] = Entry(spec=spec)
        self.triton_up = await self.triton.ready()
        for entry in list(self.entries.values()):
            if entry.spec.warm:
                await self.load(entry)

    async def load(self, entry: Entry) -> Entry:
        """Load ``entry`` and warm it up; its state says how that went."""
        async with self._lock:
            return await self._load(entry)

    async def _load(self, entry: Entry) -> Entry:
        spec = entry.spec
        entry.state, entry.error = "loading", ""
        self.on_change()
        before = self.gpu.memory()[1] if self.gpu.available else 0
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._load_and_warm(spec), timeout=self.load_timeout)
        except TimeoutError:
            entry.load_seconds = time.monotonic() - started
            await self.triton.unload(spec.name)
            entry.state = "slow"
            entry.error = f"took over {self.load_timeout:g} s to load and warm up; unloaded, not advertised"
            log.warning("model too slow to start", extra={"model": spec.model_id, "pipeline": spec.pipeline})
            self.on_change()
            return entry
        except InferenceError as exc:
            entry.load_seconds = time.monotonic() - started
            await self.triton.unload(spec.name)
            entry.state, entry.error = "failed", exc.message
            entry.retry_at = time.monotonic() + self.retry_after
            log.error("model failed to load", extra={"model": spec.model_id, "error": exc.message})
            self.on_change()
            return entry
        entry.load_seconds = time.monotonic() - started
        if self.gpu.available:
            entry.memory_bytes = max(0, self.gpu.memory()[1] - before)
        else:
            entry.memory_bytes = stub_rss(spec.name)
        entry.state = "ready"
        log.info("model ready", extra={"model": spec.model_id, "pipeline": spec.pipeline,
                                       "load_seconds": round(entry.load_seconds, 2), "memory_bytes": entry.memory_bytes})
        self.on_change()
        return entry

    async def _load_and_warm(self, spec: ModelSpec) -> None:
        config = triton_config(spec, gpu=self.gpu.available, max_pixels=self.max_pixels,
                               max_audio_seconds=self.max_audio_seconds)
        await self.triton.load(spec.name, spec.pipeline, config)
        params, body = WARM_UP[spec.pipeline]
        request = json.dumps(params).encode()
        if spec.pipeline in DECOUPLED:
            async for chunk in self.triton.stream(spec.name, request):
                if chunk.get("error"):
                    raise RunnerFailed(f"warm-up failed: {chunk['error'].get('message', '')}")
            return
        _, error = await self.triton.infer(spec.name, request, body)
        if error:
            raise RunnerFailed(f"warm-up failed: {json.loads(error).get('message', '')}")

    async def unload(self, entry: Entry) -> None:
        async with self._lock:
            entry.state = "cold"
            self.on_change()
            await self.triton.unload(entry.spec.name)
            entry.memory_bytes = 0

    async def add(self, spec: ModelSpec) -> Entry:
        """Serve a new model (or reload a known one) now; live."""
        entry = self.entries.get((spec.pipeline, spec.model_id))
        if entry is None or entry.spec != spec:
            entry = self.entries[(spec.pipeline, spec.model_id)] = Entry(spec=spec)
        return await self.load(entry)

    async def remove(self, pipeline: str, model_id: str) -> Entry | None:
        entry = self.entries.pop((pipeline, model_id), None)
        if entry is not None:
            await self.unload(entry)
        return entry

    async def stop(self) -> None:
        """Stop reloading; the models stay loaded in Triton (a restarted worker loads them again, warm)."""
        for task in list(self._reloads):
            task.cancel()

    # -- watching ----------------------------------------------------------

    async def watch(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("model check failed")
            await asyncio.sleep(self.watch_interval)

    async def check_once(self) -> None:
        """Withdraw what Triton no longer serves; reload warm models that are missing."""
        up = await self.triton.ready()
        changed = up != self.triton_up
        self.triton_up = up
        ready = [e for e in self.entries.values() if e.state == "ready"]
        alive = await asyncio.gather(*(self.triton.model_ready(e.spec.name) for e in ready)) if up else [False] * len(ready)
        for entry, ok in zip(ready, alive, strict=True):
            if not ok and entry.state == "ready":
                entry.state = "lost"
                entry.error = "Triton is down" if not up else "Triton no longer serves it"
                entry.retry_at = 0.0
                changed = True
                log.warning("model withdrawn", extra={"model": entry.spec.model_id, "reason": entry.error})
        if changed:
            self.on_change()
        if not up:
            return
        now = time.monotonic()
        for entry in list(self.entries.values()):
            if entry.spec.warm and entry.state in ("lost", "failed") and now >= entry.retry_at:
                entry.state = "loading"  # queued: not picked again by the next check
                task = asyncio.create_task(self.load(entry))
                self._reloads.add(task)
                task.add_done_callback(self._reloads.discard)
