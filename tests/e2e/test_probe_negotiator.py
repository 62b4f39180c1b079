"""Issue 13 end to end: the monitor's outside-in probe against the real negotiator over TLS (offchain).

The negotiator quotes from the real pricing service's table; the monitor runs
with the negotiator's certificate pinned and -aiModels marking an echo worker's
model warm. The probe must report OK with its latency and the advertised price
matching the table, then the model missing as warm once the worker withdraws it.

Then the same with the real parts behind it: tritonserver (the inference tests'
LocalTriton) serving one demo model built for the test, the inference service
advertising it warm, and Debian's prometheus scraping the monitor with the
repository's operations.yml (``for:`` / 120: the 2 minutes of ProbeWarmModelMissing
are 1 s, well within the seconds the inference service takes to load the model again). Unloading the
model through Triton's model control API makes the probe report it missing and
ProbeWarmModelMissing fire; the inference service loads it again, and the
alert resolves.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml

from baton_common.runtime import Runtime
from baton_common.schemas.workers import WORKERS
from baton_common.streams import ensure_kv
from baton_inference.domain import triton_name
from baton_monitor.__main__ import Monitor
from baton_monitor.config import MonitorSettings
from tests.e2e.conftest import start_pricing
from tests.e2e.test_paging import REPO, scaled_for, tool
from tests.helpers import PrivateNats, free_port, service_env
from tests.inference.conftest import LocalTriton
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.workers import TestWorker
from tests.pricing.conftest import PricingProc

MODEL = "e2e-sd"
WARM = f'baton_monitor_probe_model_warm{{model_id="{MODEL}",pipeline="text-to-image"}}'
MISMATCH = f'baton_monitor_probe_price_mismatch{{model_id="{MODEL}",pipeline="text-to-image"}}'


@pytest.fixture(scope="module")
def pricing(e2e_nats: PrivateNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PricingProc]:
    folder = tmp_path_factory.mktemp("pricing")
    models = folder / "models.json"
    models.write_text(f'[{{"pipeline":"text-to-image","model_id":"{MODEL}","price_per_unit":7,"pixels_per_unit":2}}]')
    proc = start_pricing(e2e_nats, folder, "-pricePerUnit=1200", f"-aiModels={models}")
    yield proc
    if proc.proc is not None:
        proc.stop()


@pytest.fixture(scope="module")
def negotiator(e2e_nats: PrivateNats, pricing: PricingProc,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    running = start_negotiator(e2e_nats.url, tmp_path_factory.mktemp("offchain"), BATON_NEGOTIATOR_PRICE_SOURCE="table")
    yield running
    running.stop()


@pytest.fixture
async def worker(e2e_nats: PrivateNats, negotiator: RunningNegotiator) -> AsyncIterator[TestWorker]:
    nc = await nats.connect(e2e_nats.url)
    w = await TestWorker(nc, await ensure_kv(nc.jetstream(), WORKERS), "e2e-inference",
                         models=(("text-to-image", MODEL),)).start()
    yield w
    await w.stop()
    await nc.close()


async def metric(http: httpx.AsyncClient, line: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = (await http.get("/metrics")).text
        if line in text:
            return text
        assert time.monotonic() < deadline, f"{line!r} never appeared in /metrics:\n" + "\n".join(
            x for x in text.splitlines() if "probe" in x)
        await asyncio.sleep(0.1)


async def test_the_probe_reports_ok_latency_and_a_withdrawn_warm_model(
        negotiator: RunningNegotiator, worker: TestWorker, e2e_nats: PrivateNats) -> None:
    target = f"127.0.0.1:{negotiator.grpc_port}"
    port = free_port()
    settings = MonitorSettings(nats_url=e2e_nats.url, http_host="127.0.0.1", http_port=port, instance_id="e2e-mon",
                               probe_address=target, probe_cert=str(negotiator.state_dir / "cert.pem"),
                               probe_interval=0.3, poll_interval=0.2, ai_models=f"text-to-image:{MODEL}:true")
    rt = Runtime(Monitor(settings), settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            text = await metric(http, f"{WARM} 1.0")
            assert f'baton_monitor_probe_success{{target="{target}"}} 1.0' in text
            assert f'baton_monitor_probe_state{{state="ok",target="{target}"}} 1.0' in text
            assert f"{MISMATCH} 0.0" in text  # advertised 3 wei (7/2 floored) = pricing's table
            found = re.search(rf'baton_monitor_probe_duration_seconds{{target="{re.escape(target)}"}} (\S+)', text)
            assert found and 0 < float(found.group(1)) < settings.probe_timeout
            overview = (await http.get("/api/overview")).json()
            assert overview["probe"]["state"] == "ok", overview["probe"]

            await worker.stop()  # the model is withdrawn: its advert is deleted
            text = await metric(http, f"{WARM} 0.0")
            assert f'baton_monitor_probe_success{{target="{target}"}} 1.0' in text  # the node answers: not an outage
    finally:
        rt.request_stop()
        await asyncio.wait_for(task, 15)


TTS = ("text-to-speech", "acme/tiny-tts")
TTS_WARM = f'baton_monitor_probe_model_warm{{model_id="{TTS[1]}",pipeline="{TTS[0]}"}}'


@pytest.fixture(scope="module")
def tts_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo text-to-speech model (random weights, the real classes), built once as acme/tiny-tts."""
    root = tmp_path_factory.mktemp("models")
    build = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from baton_inference.demo "
                            "import build; build('text-to-speech', Path(sys.argv[1]))", str(root / "built")],
                           capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-3000:]
    (root / "acme").mkdir()
    (root / "acme" / "tiny-tts").symlink_to(root / "built" / "text-to-speech", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    server = LocalTriton(state=tmp_path_factory.mktemp("triton"), http_port=free_port())
    server.start()
    yield server
    server.kill()


def start_prometheus(folder: Path, monitor_port: int) -> tuple[subprocess.Popen[bytes], str]:
    rules = folder / "rules"
    rules.mkdir()
    (rules / "operations.yml").write_text(scaled_for((REPO / "prometheus" / "rules" / "operations.yml").read_text(), 120))
    config = {
        "global": {"scrape_interval": "250ms", "scrape_timeout": "200ms", "evaluation_interval": "250ms"},
        "rule_files": ["rules/*.yml"],
        "scrape_configs": [{"job_name": "baton", "honor_labels": True, "static_configs": [
            {"targets": [f"127.0.0.1:{monitor_port}"], "labels": {"service": "monitor"}}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (folder / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen([tool("prometheus", "prometheus"), f"--config.file={folder / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


async def warm_model_alerts(prom: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=2) as http:
        try:
            alerts = (await http.get(f"{prom}/api/v1/alerts")).json()["data"]["alerts"]
        except (httpx.HTTPError, KeyError, ValueError):
            return []
    # Only this model's: the earlier test's monitor ran in this process, and its series stay in the registry.
    return [a for a in alerts if a["labels"]["alertname"] == "ProbeWarmModelMissing" and a["labels"]["model_id"] == TTS[1]]


async def eventually(what: str, check, timeout: float, log: Path | None = None) -> Any:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} within {timeout}s" + (
            f"\n{log.read_text()[-3000:]}" if log and log.exists() else "")
        await asyncio.sleep(0.1)


async def test_a_model_unloaded_in_triton_fires_the_probes_warm_model_alert(
        negotiator: RunningNegotiator, e2e_nats: PrivateNats, triton: LocalTriton, tts_models: Path,
        tmp_path: Path) -> None:
    config = tmp_path / "aiModels.json"
    config.write_text(json.dumps([{"pipeline": TTS[0], "model_id": TTS[1], "warm": True}]))
    inference_port = free_port()
    env = service_env(e2e_nats.url, BATON_INFERENCE_HTTP_PORT=str(inference_port), BATON_INFERENCE_TRITON_URL=triton.url,
                      BATON_INFERENCE_STATE_DIR=str(tmp_path / "inference"), BATON_INFERENCE_WATCH_INTERVAL="0.5",
                      BATON_INFERENCE_INSTANCE_ID="e2e-triton-worker", BATON_LOG_FORMAT="text")
    inference_log = tmp_path / "inference.log"
    with inference_log.open("ab") as log:
        inference = subprocess.Popen([sys.executable, "-m", "baton_inference", f"-aiModels={config}",
                                      f"-aiModelsDir={tts_models}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{negotiator.grpc_port}"
    port = free_port()
    settings = MonitorSettings(nats_url=e2e_nats.url, http_host="127.0.0.1", http_port=port, instance_id="e2e-mon-triton",
                               probe_address=target, probe_cert=str(negotiator.state_dir / "cert.pem"),
                               probe_interval=0.3, poll_interval=0.2, ai_models=str(config))
    rt = Runtime(Monitor(settings), settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    prometheus, prom = start_prometheus(tmp_path, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async def probe_says(value: str) -> bool:
                return f"{TTS_WARM} {value}" in (await http.get("/metrics")).text

            await eventually("the Triton model advertised warm to the probe", lambda: probe_says("1.0"), 120,
                             inference_log)
            # Warm and scraped for longer than the rule's `for:`: nothing fires.
            await eventually("Prometheus scraping the probe's warm model", lambda: _scraped(prom), 30,
                             tmp_path / "prometheus.log")
            await asyncio.sleep(3)
            assert not await warm_model_alerts(prom)

            async with httpx.AsyncClient(base_url=triton.url, timeout=30) as tr:
                unloaded = await tr.post(f"/v2/repository/models/{triton_name(*TTS)}/unload")
            assert unloaded.status_code == 200, unloaded.text
            await eventually("the probe reporting the model missing", lambda: probe_says("0.0"), 10)
            (alert,) = await eventually("ProbeWarmModelMissing firing", lambda: _firing(prom), 30,
                                        tmp_path / "prometheus.log")
            assert alert["labels"]["model_id"] == TTS[1] and alert["labels"]["pipeline"] == TTS[0]
            assert alert["labels"]["severity"] == "page" and alert["labels"]["service"] == "negotiator"

            # The inference service loads it again: advertised warm, the alert resolves.
            await eventually("the model warm again", lambda: probe_says("1.0"), 120, inference_log)
            await eventually("ProbeWarmModelMissing resolved", _no_alert(prom), 30)
    finally:
        prometheus.terminate()
        inference.terminate()
        rt.request_stop()
        await asyncio.wait_for(task, 15)
        for proc in (prometheus, inference):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _scraped(prom: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        try:
            result = (await http.get(f"{prom}/api/v1/query", params={"query": "baton_monitor_probe_model_warm"})
                      ).json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
            return False
    return any(r["metric"].get("model_id") == TTS[1] and r["value"][1] == "1" for r in result)


async def _firing(prom: str) -> list[dict[str, Any]]:
    return [a for a in await warm_model_alerts(prom) if a["state"] == "firing"]


def _no_alert(prom: str):  # noqa: ANN202
    async def check() -> bool:
        return not await warm_model_alerts(prom)
    return check
