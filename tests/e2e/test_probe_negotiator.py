"""Issue 13 end to end: the monitor's outside-in probe against the real negotiator over TLS (offchain).

The negotiator quotes from the real pricing service's table; the monitor runs
with the negotiator's certificate pinned and -aiModels marking an echo worker's
model warm. The probe must report OK with its latency and the advertised price
matching the table, then the model missing as warm once the worker withdraws it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import nats
import pytest

from baton_common.runtime import Runtime
from baton_common.schemas.workers import WORKERS
from baton_common.streams import ensure_kv
from baton_monitor.__main__ import Monitor
from baton_monitor.config import MonitorSettings
from tests.e2e.conftest import start_pricing
from tests.helpers import PrivateNats, free_port
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
