"""Composition root of the inference service: warm models on Triton, advertised and served on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from baton_common.errors import ConfigError
from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import Check, encode
from baton_common.schemas.audit import AUDIT
from baton_common.schemas.jobs import BODIES, job_subject
from baton_common.schemas.models import ModelControl, models_subject
from baton_common.schemas.workers import ADVERT_INTERVAL, WORKERS, Gpu, Hardware, WorkerAdvert, advert_key

from . import metrics
from .config import InferenceSettings
from .control import Control
from .domain import check_budget, human
from .manager import WarmModels
from .memory import Gpu as NvmlGpu
from .memory import host_memory
from .plan import plan, state_dir
from .triton import Triton
from .worker import Worker

__all__ = ["Inference", "main"]


class Inference(ServiceBase[InferenceSettings]):
    name = "inference"

    def __init__(self, settings: InferenceSettings) -> None:
        super().__init__(settings)
        self.specs, self.demo = plan(settings)
        self.gpu = NvmlGpu(settings.gpu)
        self.budget = settings.memory_budget or (self.gpu.memory()[0] if self.gpu.available else host_memory())
        if not self.demo:
            check_budget(self.specs, self.budget, settings.memory_headroom, where="BATON_INFERENCE_MEMORY_BUDGET")
        self.tasks: list[asyncio.Task[None]] = []
        self.warm_up_error = ""
        self._changed = asyncio.Event()
        self.kv = None
        self._published: dict[tuple[str, str], int] = {}
        """in_use per model in the last advert put."""

    async def start(self, ctx: ServiceContext) -> None:
        """Bind the stores and take jobs at once; the models load in the background, advertised as each gets warm."""
        self.ctx = ctx
        self.worker_id = ctx.instance
        self.triton = Triton(self.settings.triton_url)
        ctx.probe("triton", self._probe, interval=2.0)
        self.kv = await ctx.bus.bind(WORKERS)
        bodies = await ctx.bus.bind(BODIES)
        await ctx.bus.bind(AUDIT)
        self.models = WarmModels(
            self.triton, gpu=self.gpu, load_timeout=self.settings.load_timeout,
            watch_interval=self.settings.watch_interval, max_pixels=self.settings.max_image_pixels,
            on_change=self._changed.set, max_audio_seconds=self.settings.max_audio_seconds,
        )
        self.worker = Worker(self.models, self.triton, bodies, ctx.bus.nc, settle=self.settle,
                             gather_ms=self.settings.batch_gather_ms)
        self.subject = job_subject("inference", self.worker_id)
        self.sub = await ctx.bus.nc.subscribe(self.subject, cb=self._dispatch)
        control = Control(ctx.bus, self.models, self.settings, self.worker_id, self.budget)
        await ctx.bus.serve(models_subject(self.worker_id), ModelControl, control.handle)  # type: ignore[arg-type]
        self.tasks.append(asyncio.create_task(self._adverts(), name="adverts"))
        self.tasks.append(asyncio.create_task(self._warm_up(), name="warm-up"))

    async def _warm_up(self) -> None:
        """Build the demo set if it is what we serve, load every warm model, then watch them."""
        try:
            if self.demo:
                await self._build_demo()
            await self.models.start(self.specs)
        except Exception as exc:
            self.ctx.log.exception("loading the models failed")
            self.warm_up_error = f"{type(exc).__name__}: {exc}"
        self._changed.set()
        await self.models.watch()

    async def _dispatch(self, msg) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(self.worker.on_msg(msg))
        self.tasks.append(task)
        task.add_done_callback(lambda t: self.tasks.remove(t) if t in self.tasks else None)

    async def _build_demo(self) -> None:
        """Build (or reuse) the demo set in a child process: it imports torch, and a stop must not wait for it."""
        root = state_dir(self.settings) / "demo"
        self.ctx.log.info("building or reusing the demo set", extra={"folder": str(root)})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "baton_inference.demo", str(root),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            raise
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"building the demo set failed (it needs the inference models extra): {tail[0]}")

    async def _probe(self) -> str:
        if not await self.triton.ready():
            raise RuntimeError(f"Triton at {self.settings.triton_url} is not ready")
        return f"ready at {self.settings.triton_url}, Triton {self.triton.version}"

    def advert(self) -> WorkerAdvert:
        gpus = ()
        if self.gpu.available:
            total, used = self.gpu.memory()
            gpus = (Gpu(id=self.settings.gpu, name=self.gpu.name, memory_total=total, memory_free=total - used),)
        return WorkerAdvert(
            worker_id=self.worker_id, kind="inference", job_subject=job_subject("inference", self.worker_id),
            at=time.time(), models=self.models.advertised(), hardware=Hardware(gpus=gpus),
        )

    async def _adverts(self) -> None:
        """Put the advert at every change and every ADVERT_INTERVAL; a withdrawal is such a put."""
        key = advert_key("inference", self.worker_id)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=ADVERT_INTERVAL)
            self._changed.clear()
            advert = self.advert()
            self._update_metrics()
            try:
                await self.kv.put(key, encode(advert))  # type: ignore[union-attr]
                self._published = {(m.pipeline, m.model_id): m.in_use for m in advert.models}
            except Exception as exc:  # noqa: BLE001 - NATS away: the next round tries again
                self.ctx.log.warning("cannot write the worker advert", extra={"error": repr(exc)})

    async def settle(self, pipeline: str, model_id: str) -> None:
        """Put the advert now if the last one showed more of (pipeline, model_id) in use than is."""
        entry = self.models.find(pipeline, model_id)
        if entry is None or self._published.get((pipeline, model_id), 0) <= entry.in_use or self.kv is None:
            return
        advert = self.advert()
        await self.kv.put(advert_key("inference", self.worker_id), encode(advert))
        self._published = {(m.pipeline, m.model_id): m.in_use for m in advert.models}

    def _update_metrics(self) -> None:
        for entry in self.models.entries.values():
            labels = (entry.spec.pipeline, entry.spec.model_id)
            metrics.WARM.labels(*labels).set(1 if entry.state == "ready" else 0)
            metrics.LOAD_SECONDS.labels(*labels).set(entry.load_seconds)
            metrics.MEMORY.labels(*labels).set(entry.memory_bytes)
            metrics.IDLE.labels(*labels).set(max(0, entry.spec.capacity - entry.in_use) if entry.state == "ready" else 0)

    async def stop(self) -> None:
        if not hasattr(self, "models"):
            return
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()
        for task in list(self.tasks):
            task.cancel()
        if self.kv is not None:
            with contextlib.suppress(Exception):
                await self.kv.delete(advert_key("inference", self.worker_id))
        with contextlib.suppress(Exception):
            await self.models.stop()
        await self.triton.close()

    def checks(self) -> dict[str, Check]:
        out = {"gpu": Check(ok=True, detail=self.settings.gpu or "none (CPU)")}
        models = getattr(self, "models", None)
        if self.warm_up_error:
            out["models"] = Check(ok=False, detail=self.warm_up_error[:300])
        elif models is not None:
            states = ", ".join(f"{e.spec.pipeline} {e.spec.model_id}: {e.state}" + (" (demo)" if e.spec.demo else "")
                               for e in models.entries.values())
            out["models"] = Check(ok=any(e.state == "ready" for e in models.entries.values()) or not models.entries,
                                  detail=states or "none configured")
        return out


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        sys.exit(check(sys.argv[2:]))
    run_service("inference", InferenceSettings, Inference)


def check(argv: list[str]) -> int:
    """``baton-inference check`` (``baton models check``): the models, their weights and sizes, and the budget."""
    from baton_common.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(InferenceSettings, "inference", argv=argv)
        specs, demo = plan(settings)
        gpu = NvmlGpu(settings.gpu)
        budget = settings.memory_budget or (gpu.memory()[0] if gpu.available else host_memory())
        for spec in specs:
            note = "warm: loaded and advertised at start" if spec.warm else "cold: not loaded nor advertised until loaded"
            print(f"{spec.pipeline:<16} {spec.model_id:<40} {human(spec.estimate()):>10}  x{spec.instances} "
                  f"instance(s)  {note}{'  (demo)' if spec.demo else ''}\n{'':<16} weights: {spec.weights}")
        if demo:
            print("no -aiModels offchain: the demo set is served (built on first start)")
            return 0
        need = check_budget(specs, budget, settings.memory_headroom, where="BATON_INFERENCE_MEMORY_BUDGET")
        print(f"warm models need {human(need)} of {human(int(budget * (1 - settings.memory_headroom)))}: ok")
        return 0
    except ConfigError as exc:
        print(f"baton models check: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    main()
