"""One real tritonserver (the nvidia-pytriton wheel's, on the CPU) and one inference service per test session.

The demo set is built once into the session's state folder and loaded once;
the tests send JobRequests on the worker's subject as the negotiator would.

Other areas' tests import these fixtures (``from tests.inference.conftest import
demo, inference_state, triton``); pytest then holds one definition per importing
module, so each fixture keeps its value in ``_SHARED`` and every definition
yields the same server, folder and service (the first one set up tears it down).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from baton_common.runtime.runtime import Runtime
from baton_common.schemas import decode
from baton_common.schemas.workers import WORKERS_BUCKET, WorkerAdvert, advert_key
from baton_inference.__main__ import Inference
from baton_inference.config import InferenceSettings
from baton_inference.demo import DEMO_MODELS
from baton_inference.server import command
from tests.helpers import free_port


@dataclass
class LocalTriton:
    state: Path
    http_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        argv, env = command(self.state, http_port=self.http_port, grpc_port=free_port(), metrics_port=free_port())
        log = open(self.state / "triton.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"tritonserver did not start: {(self.state / 'triton.log').read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the server and its stub processes (its own process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


_SHARED: dict[str, object] = {}
"""The session's Triton, state folder and demo service, whichever module's fixture made them."""


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    if "triton" in _SHARED:
        yield _SHARED["triton"]  # type: ignore[misc]
        return
    server = LocalTriton(state=tmp_path_factory.mktemp("triton"), http_port=free_port())
    _SHARED["triton"] = server
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def inference_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "inference_state" not in _SHARED:
        _SHARED["inference_state"] = tmp_path_factory.mktemp("inference-state")
    return _SHARED["inference_state"]  # type: ignore[return-value]


@dataclass
class Running:
    runtime: Runtime[InferenceSettings]
    service: Inference
    worker_id: str
    subject: str
    nc: nats.NATS
    http: str

    async def advert(self) -> WorkerAdvert | None:
        kv = await self.nc.jetstream().key_value(WORKERS_BUCKET)
        try:
            entry = await kv.get(advert_key("inference", self.worker_id))
        except Exception:  # noqa: BLE001 - no key: no advert
            return None
        return decode(entry.value, WorkerAdvert) if entry.value else None

    async def served(self) -> set[tuple[str, str]]:
        advert = await self.advert()
        return {(m.pipeline, m.model_id) for m in advert.models} if advert else set()

    async def wait_served(self, want: set[tuple[str, str]], timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if await self.served() == want:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise AssertionError(f"advert {await self.served()} is not {want} after {timeout} s")


async def start_inference(nats_url: str, settings: InferenceSettings) -> Running:
    service = Inference(settings)
    runtime = Runtime(service, settings)
    task = asyncio.create_task(runtime.run(handle_signals=False))
    runtime._task = task  # type: ignore[attr-defined]
    async with httpx.AsyncClient() as http:
        for _ in range(1800):
            if task.done():
                raise RuntimeError(f"inference exited with {task.result()}")
            try:
                if (await http.get(f"http://127.0.0.1:{runtime.http_port}/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    nc = await nats.connect(nats_url)
    return Running(runtime, service, settings.instance_id, service.subject, nc, f"http://127.0.0.1:{runtime.http_port}")


async def stop_inference(running: Running) -> None:
    running.runtime.request_stop()
    await asyncio.wait_for(running.runtime._task, 30)  # type: ignore[attr-defined]
    await running.nc.close()


@pytest.fixture(scope="session")
async def demo(nats_url: str, triton: LocalTriton, inference_state: Path) -> AsyncIterator[Running]:
    """The inference service offchain with no models: it builds the demo set and serves it."""
    if "demo" in _SHARED:
        yield _SHARED["demo"]  # type: ignore[misc]
        return
    settings = InferenceSettings(
        nats_url=nats_url, http_host="127.0.0.1", http_port=free_port(), instance_id=f"w{uuid.uuid4().hex[:8]}",
        triton_url=triton.url, state_dir=str(inference_state), watch_interval=0.5, log_format="text",
        max_image_pixels=512 * 512, max_audio_seconds=30,
    )
    running = await start_inference(nats_url, settings)
    await running.wait_served({(p, m) for p, m in DEMO_MODELS.items()}, timeout=400)
    _SHARED["demo"] = running
    yield running
    await stop_inference(running)
