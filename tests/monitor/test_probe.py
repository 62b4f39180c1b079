"""The outside-in probe against a stand-in orchestrator on grpcio's TLS server, as a gateway calls it."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import httpx
import pytest

from baton_common.aimodels import parse_ai_models
from baton_common.bus import Bus
from baton_common.capabilities import pipeline_by_name
from baton_common.runtime import Runtime
from baton_common.schemas import encode
from baton_common.schemas.pricing import PRICES, TABLE_KEY, CapabilityPrice, PriceTable, WeiPrice
from baton_monitor.__main__ import Monitor
from baton_monitor.config import MonitorSettings
from baton_monitor.domain import evaluate_probe
from baton_monitor.grpc import ReserveRefused, probe_orchestrator
from tests.helpers import PrivateNats, free_port
from tests.monitor.standin import StandIn, orchestrator_info, self_signed

T2I = pipeline_by_name("text-to-image").capability
LLM = pipeline_by_name("llm").capability
SD, LLAMA = "stabilityai/sd-turbo", "meta-llama/Llama-3.1-8B-Instruct"
KEY = bytes.fromhex("11" * 32)
WARM = f"text-to-image:{SD}:true,llm:{LLAMA}:true"


@pytest.fixture
async def standin(tmp_path):
    cert, key = self_signed(tmp_path)
    s = StandIn(info=orchestrator_info({(T2I, SD): True, (LLM, LLAMA): True}, {(T2I, SD): 4, (LLM, LLAMA): 7}))
    await s.start(cert, key)
    s.cert = cert  # type: ignore[attr-defined]
    yield s
    await s.stop()


def table(**prices: int) -> PriceTable:
    return PriceTable(base=WeiPrice(num=1200), at=time.time(), auto_adjust=False, capabilities=tuple(
        CapabilityPrice(capability=T2I if name == "sd" else LLM, model_id=SD if name == "sd" else LLAMA,
                        price=WeiPrice(num=p * 3 + 1, den=3))  # floors to p: go-livepeer advertises whole wei
        for name, p in prices.items()))


async def test_the_probe_signs_as_a_gateway_and_pins_the_certificate(standin):
    answer = await probe_orchestrator(f"127.0.0.1:{standin.port}", KEY, cert=standin.cert, tls_name="localhost",
                                      timeout=3)
    from baton_common.pm.signature import address_of

    assert standin.senders == [address_of(KEY)]  # the stand-in's signature check passed
    ad = answer.advertised()
    assert ad.warm == {(T2I, SD): True, (LLM, LLAMA): True} and ad.has_ticket_params
    assert ad.prices[(T2I, SD)] == 4 and ad.base_price == 1200 and ad.address == "0x" + "ab" * 20
    assert 0 < answer.duration < 3


async def test_without_a_pinned_certificate_it_takes_the_presented_one(standin):
    answer = await probe_orchestrator(f"127.0.0.1:{standin.port}", KEY, cert=None, tls_name="localhost", timeout=3)
    assert answer.advertised().warm[(T2I, SD)]


async def test_a_different_certificate_fails_the_pin(standin, tmp_path):
    other, _ = self_signed(tmp_path / "..")
    with pytest.raises(ConnectionError):
        await probe_orchestrator(f"127.0.0.1:{standin.port}", KEY, cert=other, tls_name="localhost", timeout=2)


async def test_a_refused_reserve_is_its_own_state(standin):
    standin.refuse_reserve = True
    with pytest.raises(ReserveRefused):
        await probe_orchestrator(f"127.0.0.1:{standin.port}", KEY, cert=standin.cert, tls_name="localhost", timeout=3)


async def test_warm_models_and_prices_are_checked_against_config_and_table(standin):
    warm = parse_ai_models(WARM)
    standin.info = orchestrator_info({(T2I, SD): False, (LLM, LLAMA): True}, {(T2I, SD): 4, (LLM, LLAMA): 9},
                                     ticket_params=False)
    ad = (await probe_orchestrator(f"127.0.0.1:{standin.port}", KEY, cert=standin.cert, tls_name="localhost",
                                   timeout=3)).advertised()
    state, models = evaluate_probe(ad, warm, table(sd=4, llama=7), "0x" + "00" * 20, onchain=True)
    assert state == "reserve_refused"  # on-chain, no ticket params: an answer, not an outage
    by = {m.model_id: m for m in models}
    assert not by[SD].warm and by[LLAMA].warm
    assert not by[SD].price_mismatch and by[LLAMA].price_mismatch
    assert by[LLAMA].expected_price == Fraction(7) and by[LLAMA].advertised_price == Fraction(9)
    state, _ = evaluate_probe(ad, warm, None, "0x" + "00" * 20, onchain=False)
    assert state == "ok"  # offchain there are no ticket params


async def metric(http: httpx.AsyncClient, line: str, *, present: bool = True, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = (await http.get("/metrics")).text
        if (line in text) == present:
            return text
        assert time.monotonic() < deadline, f"{line!r} {'never appeared' if present else 'stayed'} in /metrics"
        await asyncio.sleep(0.1)


async def test_the_monitor_exports_what_the_probe_sees(standin, private_nats: PrivateNats):
    private_nats.start()
    bus = await Bus.connect([private_nats.url], name="test")
    kv = await bus.bind(PRICES)
    await kv.put(TABLE_KEY, encode(table(sd=4, llama=7)))
    port = free_port()
    target = f"127.0.0.1:{standin.port}"
    settings = MonitorSettings(nats_url=private_nats.url, http_host="127.0.0.1", http_port=port, instance_id="m",
                               probe_address=target, probe_interval=0.3, ai_models=WARM, poll_interval=0.2)
    rt = Runtime(Monitor(settings), settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            text = await metric(http, f'baton_monitor_probe_success{{target="{target}"}} 1.0')
            assert f'baton_monitor_probe_state{{state="ok",target="{target}"}} 1.0' in text
            assert f'baton_monitor_probe_model_warm{{model_id="{SD}",pipeline="text-to-image"}} 1.0' in text
            assert f'baton_monitor_probe_price_mismatch{{model_id="{SD}",pipeline="text-to-image"}} 0.0' in text
            # A warm model is withdrawn (unloaded in Triton): gateways no longer see it warm.
            standin.info = orchestrator_info({(LLM, LLAMA): True}, {(LLM, LLAMA): 7})
            await metric(http, f'baton_monitor_probe_model_warm{{model_id="{SD}",pipeline="text-to-image"}} 0.0')
            # Slower than the gateways' 500 ms.
            standin.delay = 0.6
            text = await metric(http, f'baton_monitor_probe_success{{target="{target}"}} 1.0')
            for _ in range(50):
                dur = float(text.split(f'baton_monitor_probe_duration_seconds{{target="{target}"}} ')[1].split()[0])
                if dur > 0.5:
                    break
                await asyncio.sleep(0.2)
                text = (await http.get("/metrics")).text
            assert dur > 0.5
            # The orchestrator goes away: the probe fails.
            standin.delay = 0
            await standin.stop()
            text = await metric(http, f'baton_monitor_probe_success{{target="{target}"}} 0.0')
            assert f'baton_monitor_probe_state{{state="failed",target="{target}"}} 1.0' in text
            overview = (await http.get("/api/overview")).json()
            assert overview["probe"]["state"] == "failed" and overview["probe"]["error"]
            # /readyz names the failing probe, and the monitor stays ready: it reports, it does not serve.
            for _ in range(30):
                ready = await http.get("/readyz")
                if not ready.json()["checks"].get("probe", {}).get("ok", True):
                    break
                await asyncio.sleep(0.2)
            assert ready.status_code == 200 and ready.json()["checks"]["probe"]["detail"].startswith("failed")
    finally:
        rt.request_stop()
        await asyncio.wait_for(task, 15)
        await bus.drain()
