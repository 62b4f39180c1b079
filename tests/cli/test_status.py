"""`baton status`: instances from heartbeats; non-zero exit when a service is down."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import nats
import pytest

from baton_common.config import SERVICES
from baton_common.schemas import (
    HEARTBEAT_BUCKET,
    HEARTBEAT_TTL,
    SUPERVISION_BUCKET,
    Heartbeat,
    Supervision,
    encode,
)
from tests.helpers import PrivateNats, free_port


@pytest.fixture
def server(private_nats: PrivateNats) -> PrivateNats:
    private_nats.start()
    return private_nats


async def put_heartbeats(url: str, services: list[str], age: float = 0.0) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=HEARTBEAT_BUCKET, ttl=HEARTBEAT_TTL)
    now = time.time()
    for name in services:
        hb = Heartbeat(service=name, instance="host-1", version="0.1.0", state="ready",
                       started_at=now - 100, at=now - age, pid=1234)
        await kv.put(f"{name}.host-1", encode(hb))
    sup = await js.create_key_value(bucket=SUPERVISION_BUCKET, ttl=30)
    await sup.put("pricing", encode(Supervision(service="pricing", state="crash-loop", restarts=7,
                                                crashes_last_minute=5, last_exit=1, at=now)))
    await nc.close()


def status(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton_cli", "status", "--nats-url", url, *args],
                          capture_output=True, text=True, timeout=30)


async def test_all_services_up_exits_zero(server: PrivateNats) -> None:
    await put_heartbeats(server.url, list(SERVICES))
    run = status(server.url, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and all(s["up"] for s in report["services"].values())
    assert report["services"]["chain"]["instances"][0]["pid"] == 1234


async def test_a_missing_service_is_down_and_exits_one(server: PrivateNats) -> None:
    await put_heartbeats(server.url, [s for s in SERVICES if s != "pricing"])
    run = status(server.url)
    assert run.returncode == 1
    assert "down: pricing" in run.stdout
    assert "crash-loop" in run.stdout  # what `baton up` knows of the process is shown too


async def test_a_stale_heartbeat_counts_as_down(server: PrivateNats) -> None:
    await put_heartbeats(server.url, list(SERVICES), age=7.0)  # older than 3 intervals
    run = status(server.url, "--json")
    assert run.returncode == 1
    assert not any(s["up"] for s in json.loads(run.stdout)["services"].values())


def test_unreachable_nats_is_a_clear_error() -> None:
    run = status(f"nats://127.0.0.1:{free_port()}")
    assert run.returncode == 2 and "cannot reach NATS" in run.stderr


async def test_no_heartbeats_at_all_means_everything_down(server: PrivateNats) -> None:
    run = status(server.url, "--json")
    assert run.returncode == 1 and set(json.loads(run.stdout)["services"]) == set(SERVICES)


async def test_an_entry_it_cannot_read_does_not_break_the_report(server: PrivateNats) -> None:
    await put_heartbeats(server.url, list(SERVICES))
    nc = await nats.connect(server.url)
    kv = await nc.jetstream().key_value(HEARTBEAT_BUCKET)
    await kv.put("pricing.future", b'{"type": "heartbeat.v2", "shape": "unknown"}')
    await nc.close()
    run = status(server.url, "--json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["services"]["pricing"]["instances"]) == 1


def test_nats_without_jetstream_is_a_clear_error(private_nats: PrivateNats) -> None:
    plain = PrivateNats(private_nats.port)
    plain.start()
    try:
        run = status(plain.url)
    finally:
        plain.stop()
    assert run.returncode == 2 and "is JetStream enabled?" in run.stderr
