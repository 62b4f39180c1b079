"""Each of the six services is a real process: it starts on the runtime, heartbeats, serves health, stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import nats
import pytest

from baton_common.config import SERVICES
from baton_common.schemas import HEARTBEAT_BUCKET, Heartbeat, decode, heartbeat_key
from tests.helpers import free_port


def service_env(nats_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    return {**env, "BATON_NATS_URL": nats_url, "BATON_HTTP_HOST": "127.0.0.1", **extra}


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready on :{port} within {timeout}s")


@pytest.mark.parametrize("service", SERVICES)
async def test_service_runs_heartbeats_and_stops(service: str, nats_url: str, prefix: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", f"baton_{service}"], stderr=subprocess.PIPE,
                            env=service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_INSTANCE_ID=prefix))
    try:
        ready = wait_ready(port, proc)
        assert ready.json()["service"] == service
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "alive", "service": service}
        assert f'baton_runtime_ready{{service="{service}"}} 1.0' in httpx.get(f"http://127.0.0.1:{port}/metrics").text

        nc = await nats.connect(nats_url)
        kv = await nc.jetstream().key_value(HEARTBEAT_BUCKET)
        hb = decode((await kv.get(heartbeat_key(service, prefix))).value, Heartbeat)
        await nc.close()
        assert (hb.service, hb.instance, hb.state, hb.pid) == (service, prefix, "ready", proc.pid)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
