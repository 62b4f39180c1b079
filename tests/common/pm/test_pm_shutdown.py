"""A graceful stop during an in-flight paid request: it completes, its credit lands, nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import httpx
import nats
from nats.js.errors import KeyNotFoundError

from baton_common.pm import Balances
from baton_common.pm_nats import KvBalanceStore
from baton_common.proto import lp_rpc_pb2
from tests.common.pm.paying_service import TICKET_EV
from tests.common.test_runtime import _refused, wait_until
from tests.helpers import free_port, service_env, wait_ready

from .pm_gateway import Gateway


async def test_sigterm_during_a_paid_request_finishes_its_credit(
    nats_url: str, prefix: str, nc: nats.NATS, repo: Path, tmp_path: Path
) -> None:
    port, listen = free_port(), free_port()
    env = service_env(
        nats_url,
        BATON_HTTP_PORT=str(port),
        BATON_INSTANCE_ID=prefix,
        BATON_INFLIGHT_BUCKET=prefix,
        BATON_INFLIGHT_LISTEN_PORT=str(listen),
        BATON_INFLIGHT_WORK_SECONDS="1.5",
    )
    gateway = Gateway.random()
    with open(tmp_path / "paying.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.common.pm.paying_service"], cwd=repo, env=env, stderr=log)
    try:
        wait_ready(port, proc)
        js = nc.jetstream()
        nonces = await js.key_value(f"{prefix}_nonces")
        ledger = Balances(KvBalanceStore(await js.key_value(f"{prefix}_balances")))
        async with httpx.AsyncClient(timeout=15) as http:
            quoted = await http.get(f"http://127.0.0.1:{listen}/quote/{gateway.address.hex()}")
            params = lp_rpc_pb2.TicketParams.FromString(quoted.content)
            payment = gateway.pay(params, 3).SerializeToString()
            pending = asyncio.create_task(http.post(f"http://127.0.0.1:{listen}/work/m", content=payment))

            async def spent() -> bool:  # the nonces are spent: the request waits before its credit
                try:
                    await nonces.get(params.recipient_rand_hash.hex())
                    return True
                except KeyNotFoundError:
                    return False

            await wait_until(spent)
            proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: _refused(listen), timeout=5)
            assert not pending.done() and proc.poll() is None
            resp = await pending
        assert resp.status_code == 200 and resp.content == b"3"
        assert await ledger.balance(gateway.address, "m") == 3 * Fraction(TICKET_EV)
        assert proc.wait(timeout=25) == 0
    finally:
        proc.kill()
        proc.wait()
