"""The warm-model manager with the real Triton: advertise when warm, withdraw within 5 s, re-advertise once warm.

Runs after test_jobs (same session service); the last test kills Triton.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nats.errors
import pytest
import tritonclient.http.aio as triton_http

from baton_common.errors import ConfigError
from baton_common.schemas import decode
from baton_common.schemas.audit import AuditEvent
from baton_inference.__main__ import Inference
from baton_inference.config import InferenceSettings
from baton_inference.demo import DEMO_MODELS
from baton_inference.domain import triton_name
from tests.helpers import free_port

from .conftest import LocalTriton, Running, start_inference, stop_inference

DEMO = {(p, m) for p, m in DEMO_MODELS.items()}


async def test_advertises_every_warm_demo_model_with_load_time_and_memory(demo: Running) -> None:
    advert = await demo.advert()
    assert advert is not None and advert.kind == "inference" and advert.job_subject == demo.subject
    assert {(m.pipeline, m.model_id) for m in advert.models} == DEMO
    for model in advert.models:
        assert model.warm and model.demo and model.capacity == 1
        assert model.load_seconds > 0
        assert model.memory_bytes > 100 * 1024**2, model  # a stub process with torch in it
        assert model.runner_version.startswith("triton-2.51")
    assert time.time() - advert.at < 6


async def test_metrics_show_each_model_warm(demo: Running) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{demo.http}/metrics")).text
    assert 'baton_inference_model_warm{model_id="baton-demo/tiny-sd",pipeline="text-to-image"} 1.0' in text
    assert "baton_inference_model_load_seconds{" in text and "baton_inference_model_memory_bytes{" in text
    assert 'livepeer_ai_models_requested{model_id="baton-demo/tiny-sd",pipeline="text-to-image"}' in text


async def test_a_model_unloaded_behind_its_back_is_withdrawn_then_readvertised(demo: Running, triton: LocalTriton) -> None:
    name = triton_name("text-to-speech", DEMO_MODELS["text-to-speech"])
    client = triton_http.InferenceServerClient(triton.url.split("://")[1])
    try:
        await client.unload_model(name)
    finally:
        await client.close()
    took = await demo.wait_served(DEMO - {("text-to-speech", DEMO_MODELS["text-to-speech"])}, timeout=5)
    assert took < 5
    await demo.wait_served(DEMO, timeout=60)  # reloaded and warmed up by the manager


def models_dir(root: Path, demo_state: Path) -> Path:
    """A hub-cache layout folder holding a copy of the demo text-to-image weights as acme/tiny-sd."""
    snapshot = root / "models--acme--tiny-sd" / "snapshots" / "0123abcd"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(demo_state / "demo" / "text-to-image", target_is_directory=True)
    (root / "models--acme--tiny-sd" / "refs").mkdir()
    (root / "models--acme--tiny-sd" / "refs" / "main").write_text("0123abcd")
    return root


def settings_for(nats_url: str, triton: LocalTriton, tmp_path: Path, models: list[dict], **extra: object) -> InferenceSettings:
    config = tmp_path / "aiModels.json"
    config.write_text(json.dumps(models))
    return InferenceSettings(
        nats_url=nats_url, http_host="127.0.0.1", http_port=free_port(), instance_id=f"w{uuid.uuid4().hex[:8]}",
        triton_url=triton.url, ai_models=str(config), ai_models_dir=str(tmp_path / "models"),
        state_dir=str(tmp_path / "state"), watch_interval=0.5, log_format="text", **extra,  # type: ignore[arg-type]
    )


async def test_budget_refusal_names_the_models_and_sizes(demo: Running, triton: LocalTriton, tmp_path: Path,
                                                         nats_url: str, inference_state: Path) -> None:
    models_dir(tmp_path / "models", inference_state)
    settings = settings_for(nats_url, triton, tmp_path,
                            [{"pipeline": "text-to-image", "model_id": "acme/tiny-sd", "warm": True, "capacity": 4}],
                            memory_budget=100_000)
    with pytest.raises(ConfigError) as refused:
        Inference(settings)
    message = str(refused.value)
    assert "text-to-image acme/tiny-sd" in message and "KiB" in message and "budget" in message


async def test_unknown_weights_are_refused_at_start(triton: LocalTriton, tmp_path: Path, nats_url: str) -> None:
    (tmp_path / "models").mkdir()
    settings = settings_for(nats_url, triton, tmp_path, [{"pipeline": "llm", "model_id": "acme/missing", "warm": True}])
    with pytest.raises(ConfigError, match="no weights for acme/missing"):
        Inference(settings)


async def test_a_slow_starter_is_not_advertised(demo: Running, triton: LocalTriton, tmp_path: Path, nats_url: str,
                                                inference_state: Path) -> None:
    models_dir(tmp_path / "models", inference_state)
    settings = settings_for(nats_url, triton, tmp_path,
                            [{"pipeline": "text-to-image", "model_id": "acme/tiny-sd", "warm": True}],
                            load_timeout=0.2)
    slow = await start_inference(nats_url, settings)
    try:
        for _ in range(600):
            entry = slow.service.models.find("text-to-image", "acme/tiny-sd")
            if entry is not None and entry.state not in ("cold", "loading"):
                break
            await asyncio.sleep(0.1)
        assert entry is not None and entry.state == "slow" and "took over 0.2 s" in entry.error
        assert await slow.served() == set()
        assert "slow" in (await slow_status(slow))
    finally:
        await stop_inference(slow)


async def slow_status(w: Running) -> str:
    import httpx

    async with httpx.AsyncClient() as http:
        return (await http.get(f"{w.http}/readyz")).text


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton_cli", *args], capture_output=True, text=True, timeout=timeout)


async def test_models_unload_and_load_live_are_audited(demo: Running, nats_url: str) -> None:
    model = ("text-to-speech", DEMO_MODELS["text-to-speech"])
    done = await asyncio.to_thread(cli, "models", "unload", *model, "--worker", demo.worker_id,
                                   "--nats-url", nats_url, "--reason", "test")
    assert done.returncode == 0, done.stderr
    assert "cold" in done.stdout
    assert await demo.served() == DEMO - {model}
    done = await asyncio.to_thread(cli, "models", "load", *model, "--worker", demo.worker_id, "--nats-url", nats_url)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "ready in" in done.stdout
    await demo.wait_served(DEMO, timeout=5)
    js = demo.nc.jetstream()
    sub = await js.subscribe("baton.audit.models", ordered_consumer=True)
    events = []
    try:
        while True:
            msg = await sub.next_msg(timeout=2)
            events.append(decode(msg.data, AuditEvent))
    except (TimeoutError, nats.errors.TimeoutError):
        pass
    finally:
        await sub.unsubscribe()
    mine = [e for e in events if e.target == f"{demo.worker_id}/{model[0]}/{model[1]}"]
    assert [e.action for e in mine] == ["models.unload", "models.load"]
    assert mine[0].reason == "test" and mine[0].actor and all(e.ok for e in mine)


async def test_models_check_reports_sizes_and_refuses_over_budget(tmp_path: Path, inference_state: Path) -> None:
    models_dir(tmp_path / "models", inference_state)
    config = tmp_path / "aiModels.json"
    config.write_text(json.dumps([{"pipeline": "text-to-image", "model_id": "acme/tiny-sd", "warm": True},
                                  {"pipeline": "text-to-image", "model_id": "acme/tiny-sd-2", "warm": False}]))
    (tmp_path / "models" / "acme").mkdir()
    (tmp_path / "models" / "acme" / "tiny-sd-2").symlink_to(inference_state / "demo" / "text-to-image")
    args = [f"-aiModels={config}", f"-aiModelsDir={tmp_path / 'models'}"]
    ok = await asyncio.to_thread(cli, "models", "check", *args)
    assert ok.returncode == 0, ok.stderr
    assert "acme/tiny-sd " in ok.stdout and "KiB" in ok.stdout and "cold: not loaded" in ok.stdout
    refused = await asyncio.to_thread(cli, "models", "check", *args, "--memory-budget", "1000")
    assert refused.returncode == 2 and "acme/tiny-sd" in refused.stderr and "budget" in refused.stderr


async def test_triton_killed_withdraws_everything_then_readvertises_once_warm(demo: Running,
                                                                             triton: LocalTriton) -> None:
    triton.kill()
    started = time.monotonic()
    await demo.wait_served(set(), timeout=5)
    assert time.monotonic() - started < 5
    advert = await demo.advert()
    assert advert is not None and advert.models == ()  # an explicit put, not an expired key
    triton.start()
    # The manager reloads each warm model and advertises it once warm, one by one (nine stubs importing torch
    # again on 2 shared cores take minutes): text-to-image, the first, is advertised again and serves, and the
    # advert never holds a model that is not warm. The rest come back while later tests run.
    first = ("text-to-image", DEMO_MODELS["text-to-image"])
    deadline = time.monotonic() + 200
    while first not in await demo.served():
        assert time.monotonic() < deadline, await demo.served()
        advert = await demo.advert()
        assert advert is not None and all(m.warm for m in advert.models)
        await asyncio.sleep(0.2)
    for model in (await demo.advert()).models:
        entry = demo.service.models.find(model.pipeline, model.model_id)
        assert entry is not None and entry.state == "ready", entry
    replies_ok = await asyncio.wait_for(_one_image(demo), 60)
    assert replies_ok


async def _one_image(w: Running) -> bool:
    from .test_jobs import job

    replies = await job(w, "text-to-image", {"prompt": "again", "height": 32, "width": 32, "num_inference_steps": 1})
    return type(replies[-1]).__name__ == "JobResult"
