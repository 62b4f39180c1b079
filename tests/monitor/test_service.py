"""Monitor service: which services are up, from real heartbeats, as metrics and /status."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import nats
import pytest

from baton_common.health import ServiceStatus
from baton_common.runtime import Runtime
from baton_common.schemas import HEARTBEAT_BUCKET, HEARTBEAT_TTL, Heartbeat, encode
from baton_monitor.__main__ import Monitor
from baton_monitor.config import MonitorSettings
from baton_monitor.domain import transitions
from tests.helpers import PrivateNats, free_port


def st(name: str, up: bool) -> ServiceStatus:
    return ServiceStatus(service=name, up=up, ready=int(up), instances=[])


def test_transitions() -> None:
    assert transitions({}, {"a": st("a", True)}) == [("a", True)]
    assert transitions({"a": True}, {"a": st("a", True)}) == []
    assert transitions({"a": True, "b": False}, {"a": st("a", False), "b": st("b", True)}) == [("a", False), ("b", True)]


@pytest.fixture
def server(private_nats: PrivateNats) -> PrivateNats:
    private_nats.start()
    return private_nats


async def test_monitor_exports_up_and_down(server: PrivateNats, caplog: pytest.LogCaptureFixture) -> None:
    nc = await nats.connect(server.url)
    kv = await nc.jetstream().create_key_value(bucket=HEARTBEAT_BUCKET, ttl=HEARTBEAT_TTL)
    now = time.time()
    await kv.put("pricing.a", encode(Heartbeat(service="pricing", instance="a", version="1", state="ready",
                                               started_at=now, at=now)))
    port = free_port()
    settings = MonitorSettings(nats_url=server.url, http_host="127.0.0.1", http_port=port, instance_id="m",
                               expected_services=("pricing", "chain"), poll_interval=0.2)
    rt = Runtime(Monitor(settings), settings)
    with caplog.at_level(logging.INFO, logger="baton.monitor"):
        task = asyncio.create_task(rt.run(handle_signals=False))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(100):
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                status = (await http.get("/status")).json()
                assert status["pricing"]["up"] and not status["chain"]["up"]
                metrics = (await http.get("/metrics")).text
                assert 'baton_monitor_service_up{service="pricing"} 1.0' in metrics
                assert 'baton_monitor_service_up{service="chain"} 0.0' in metrics
                assert 'baton_monitor_service_instances{service="pricing",state="ready"} 1.0' in metrics

                await kv.delete("pricing.a")
                for _ in range(50):
                    await asyncio.sleep(0.1)
                    if not (await http.get("/status")).json()["pricing"]["up"]:
                        break
                assert 'baton_monitor_service_up{service="pricing"} 0.0' in (await http.get("/metrics")).text
        finally:
            rt.request_stop()
            await asyncio.wait_for(task, 10)
            await nc.close()
    downs = [r for r in caplog.records if r.getMessage() == "service down"]
    assert [r.svc for r in downs] == ["chain", "pricing"]  # type: ignore[attr-defined]
