"""Each of the six services is a real process: it starts on the runtime, heartbeats, serves health, stops."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import nats
import pytest

from baton_common.config import SERVICES
from baton_common.schemas import HEARTBEAT_BUCKET, Heartbeat, decode, heartbeat_key
from tests.helpers import free_port, service_env, wait_ready


@pytest.mark.parametrize("service", SERVICES)
async def test_service_runs_heartbeats_and_stops(service: str, nats_url: str, prefix: str) -> None:
    port = free_port()
    # A service's own listeners get free ports too: fixed defaults (the negotiator's 8935/8936) may be taken.
    own = {"negotiator": {"BATON_NEGOTIATOR_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
                          "BATON_NEGOTIATOR_JOB_PORT": str(free_port())}}.get(service, {})
    proc = subprocess.Popen([sys.executable, "-m", f"baton_{service}"], stderr=subprocess.PIPE,
                            env=service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_INSTANCE_ID=prefix, **own))
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
