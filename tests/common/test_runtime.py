"""The service runtime: health endpoints, heartbeats, readiness and shutdown, on a real NATS."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import nats.js.errors
import pytest

from baton_common.config import CommonSettings
from baton_common.runtime import Runtime, ServiceBase, ServiceContext
from baton_common.schemas import HEARTBEAT_BUCKET, Check, Heartbeat, decode, heartbeat_key
from tests.helpers import free_port


class Toy(ServiceBase[CommonSettings]):
    name = "toy"

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(settings)
        self.may_start = asyncio.Event()
        self.backend_up = True
        self.stopped = False

    async def start(self, ctx: ServiceContext) -> None:
        async def backend() -> str:
            if not self.backend_up:
                raise ConnectionError("backend refused")
            return "backend fine"

        ctx.probe("backend", backend, interval=0.2, required=True)
        await self.may_start.wait()

    async def stop(self) -> None:
        self.stopped = True

    def checks(self) -> dict[str, Check]:
        return {"gpu": Check(ok=True, detail="none")}


async def wait_until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def toy(nats_url: str, prefix: str):
    port = free_port()
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix)
    service = Toy(settings)
    rt = Runtime(service, settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        yield service, rt, task, http
    rt.request_stop()
    await asyncio.wait_for(task, 10)


async def heartbeat(nc, instance: str) -> Heartbeat | None:  # type: ignore[no-untyped-def]
    try:
        kv = await nc.jetstream().key_value(HEARTBEAT_BUCKET)
        return decode((await kv.get(heartbeat_key("toy", instance))).value, Heartbeat)
    except nats.js.errors.NotFoundError:  # no bucket yet, or no such key
        return None


async def test_not_ready_until_start_up_is_done_then_ready(toy, nc, prefix: str) -> None:
    service, rt, task, http = toy

    async def alive() -> bool:
        try:
            return (await http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(alive)
    await wait_until(lambda: _true_if(heartbeat(nc, prefix)))
    r = await http.get("/readyz")
    assert r.status_code == 503 and r.json()["state"] == "starting"
    assert (await heartbeat(nc, prefix)).state == "starting"

    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    body = (await http.get("/readyz")).json()
    assert body["ready"] and body["checks"]["nats"]["ok"] and body["checks"]["backend"]["detail"] == "backend fine"
    await asyncio.sleep(2.5)  # one heartbeat interval later the bucket says ready too
    hb = await heartbeat(nc, prefix)
    assert hb.state == "ready" and hb.pid == os.getpid() and hb.checks["gpu"].detail == "none"
    assert time.time() - hb.at < 3


async def test_a_failing_required_check_makes_it_unready_and_back(toy, nc, prefix: str) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    service.backend_up = False
    await wait_until(lambda: _status(http, 503))
    body = (await http.get("/readyz")).json()
    assert body["state"] == "not_ready" and "backend refused" in body["checks"]["backend"]["detail"]
    service.backend_up = True
    await wait_until(lambda: _status(http, 200))


async def test_metrics_endpoint(toy) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    text = (await http.get("/metrics")).text
    assert 'baton_runtime_ready{service="toy"} 1.0' in text
    assert 'baton_runtime_nats_connected{service="toy"} 1.0' in text
    assert "process_start_time_seconds" in text or "python_info" in text


async def test_graceful_stop_removes_the_heartbeat(toy, nc, prefix: str) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    rt.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert service.stopped
    assert await heartbeat(nc, prefix) is None


async def test_nats_closing_under_the_service_is_fatal(toy) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    await rt.bus.nc.close()
    assert await asyncio.wait_for(task, 10) == 1


async def _status(http: httpx.AsyncClient, code: int) -> bool:
    try:
        return (await http.get("/readyz")).status_code == code
    except httpx.HTTPError:
        return False


async def _true_if(aw) -> bool:  # type: ignore[no-untyped-def]
    return (await aw) is not None


# -- as a real process ---------------------------------------------------------


def service_env(nats_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    return {**env, "BATON_NATS_URL": nats_url, "BATON_HTTP_HOST": "127.0.0.1", **extra}


def test_sigterm_stops_a_service_process_cleanly(nats_url: str, prefix: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_pricing"], stderr=subprocess.PIPE,
                            env=service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_INSTANCE_ID=prefix))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("pricing never became ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert b'"msg": "stopped"' in proc.stderr.read()
    finally:
        proc.kill()


def test_bad_configuration_stops_the_service_at_start_naming_it(nats_url: str) -> None:
    run = subprocess.run([sys.executable, "-m", "baton_pricing"], capture_output=True, text=True, timeout=30,
                         env=service_env(nats_url, BATON_PRICING_HTTP_PROT="1"))
    assert run.returncode == 2
    assert "unknown setting BATON_PRICING_HTTP_PROT" in run.stderr


def test_a_port_in_use_is_fatal(nats_url: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "baton_pricing"], capture_output=True, text=True, timeout=30,
                             env=service_env(nats_url, BATON_HTTP_PORT=str(port)))
    assert run.returncode == 1
    assert "HTTP server stopped" in run.stderr
