"""The operator status page in Debian's headless Chromium: what a person sees at a glance.

The monitor runs for real on a private NATS, with heartbeats, a worker advert,
the price table, winners and chain data in their buckets, and its probe
pointed at the stand-in orchestrator. Chromium renders ``GET /``; the test
reads the rendered DOM and takes a screenshot (kept under
``$BATON_TEST_ARTIFACTS`` when set).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from baton_common.bus import Bus
from baton_common.capabilities import pipeline_by_name
from baton_common.pm.ticket import SignedTicket, Ticket
from baton_common.pm.winners import WinnerPending, WinnerRedeemed
from baton_common.runtime import Runtime
from baton_common.schemas import Heartbeat, encode, heartbeat_key
from baton_common.schemas.chain import CHAIN, RoundState
from baton_common.schemas.health import HEARTBEATS
from baton_common.schemas.payments import WINNERS
from baton_common.schemas.pricing import PRICES, TABLE_KEY, CapabilityPrice, PriceTable, WeiPrice
from baton_common.schemas.workers import WORKERS, ModelState, WorkerAdvert
from baton_monitor.__main__ import Monitor
from baton_monitor.config import MonitorSettings
from tests.helpers import PrivateNats, free_port
from tests.monitor.standin import StandIn, orchestrator_info, self_signed

SD = "stabilityai/sd-turbo"
T2I = pipeline_by_name("text-to-image").capability
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.fail("chromium is not installed: apt-get install chromium (./dev test does)", pytrace=False)
    return found


def browse(url: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{time.monotonic_ns()}"
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1100",
                           "--virtual-time-budget=3000", *args, url],
                          capture_output=True, text=True, timeout=90)


class ChainMetrics(ThreadingHTTPServer):
    """The chain service's /metrics as far as the status page reads it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MetricsHandler)


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        data = (b"# HELP baton_chain_last_reward_round The last round reward() was called for.\n"
                b"# TYPE baton_chain_last_reward_round gauge\nbaton_chain_last_reward_round 3951.0\n")
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def winner(face_value: int, nonce: int) -> SignedTicket:
    t = Ticket(recipient=b"\x01" * 20, sender=b"\x02" * 20, face_value=face_value, win_prob=1, sender_nonce=nonce,
               recipient_rand_hash=b"\x03" * 32)
    return SignedTicket(ticket=t, sig=b"\x04" * 65, recipient_rand=nonce, expiration_block=10)


async def alive(bus: Bus, chain_http: str) -> None:
    """Heartbeats of four services and an inference worker's advert, kept fresh; transcode stays silent.

    The chain instance's heartbeat names its metrics server (a stand-in serving the
    series chain is to export), where the monitor reads the last reward round."""
    heartbeats, workers = await bus.bind(HEARTBEATS), await bus.bind(WORKERS)
    while True:
        now = time.time()
        for service in ("negotiator", "pricing", "inference", "chain"):
            await heartbeats.put(heartbeat_key(service, f"{service}-1"), encode(Heartbeat(
                service=service, instance=f"{service}-1", version="0.1.0", state="ready", started_at=now - 300,
                at=now, http=chain_http if service == "chain" else "")))
        await workers.put("inference.w1", encode(WorkerAdvert(
            worker_id="w1", kind="inference", job_subject="baton.jobs.inference.w1", at=now,
            models=(ModelState(pipeline="text-to-image", model_id=SD, warm=True, capacity=1),))))
        await asyncio.sleep(1)


async def seed(bus: Bus) -> None:
    now = time.time()
    prices = await bus.bind(PRICES)
    await prices.put(TABLE_KEY, encode(PriceTable(
        base=WeiPrice(num=1200), at=now, auto_adjust=False,
        capabilities=(CapabilityPrice(capability=T2I, model_id=SD, price=WeiPrice(num=4)),))))
    winners = await bus.bind(WINNERS)
    import msgspec

    await winners.put("aa" * 32, msgspec.json.encode(WinnerPending(winner(10**15, 1))))
    await winners.put("bb" * 32, msgspec.json.encode(WinnerRedeemed(winner(25 * 10**15, 2), tx_hash=b"\x05" * 32)))
    chain = await bus.bind(CHAIN)
    await chain.put("round", encode(RoundState(round=3952, initialized=True, last_initialized_round=3952,
                                               read_at=now)))


async def test_the_status_page_shows_the_stack_at_a_glance(private_nats: PrivateNats, tmp_path: Path) -> None:
    private_nats.start()
    bus = await Bus.connect([private_nats.url], name="test")
    await seed(bus)
    chain_metrics = ChainMetrics()
    threading.Thread(target=chain_metrics.serve_forever, daemon=True).start()
    keeper = asyncio.create_task(alive(bus, f"http://127.0.0.1:{chain_metrics.server_address[1]}"))
    cert, key = self_signed(tmp_path)
    standin = StandIn(info=orchestrator_info({(T2I, SD): True}, {(T2I, SD): 4}))
    await standin.start(cert, key)
    port = free_port()
    settings = MonitorSettings(
        nats_url=private_nats.url, http_host="127.0.0.1", http_port=port, instance_id="baton-monitor",
        expected_services=("negotiator", "pricing", "chain", "inference", "transcode", "monitor"), poll_interval=0.3,
        probe_address=f"127.0.0.1:{standin.port}", probe_cert=str(tmp_path / "cert.pem"), probe_interval=0.5,
        ai_models=f"text-to-image:{SD}:true")
    rt = Runtime(Monitor(settings), settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    url = f"http://127.0.0.1:{port}/"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(150):
                try:
                    overview = (await http.get(f"{url}api/overview")).json()
                    if overview["probe"] and overview["last_reward_round"]:
                        break
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                await asyncio.sleep(0.1)
        dom = await asyncio.to_thread(browse, url, tmp_path, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom.stdout))
        assert "Baton status" in text
        assert "1 down: transcode" in text  # the monitor's own heartbeat is the runtime's
        for expected in (
            "negotiator UP 1/1", "transcode DOWN 0/0 never", "monitor UP 1/1",  # services
            "No GPUs on this host (NVML:",                                      # this machine has no driver
            f"text-to-image {SD} warm warm",                                    # workers and gateways agree
            f"text-to-image {SD} default 4 wei/unit", "1200 wei/pixel",         # prices
            "State OK", "GetOrchestrator",                                      # the probe's view
            "Pending redemptions 1", "Redeemed tickets 1",
            "Earnings (redeemed face value) 0.025 ETH", "Current round 3952",
            "Last reward round 3951",
        ):
            assert expected in text, f"{expected!r} not on the page: {text[:3000]}"
        shot = tmp_path / "status.png"
        result = await asyncio.to_thread(browse, url, tmp_path, f"--screenshot={shot}")
        assert result.returncode == 0 and shot.stat().st_size > 10_000, result.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("BATON_TEST_ARTIFACTS"):
            out = Path(os.environ["BATON_TEST_ARTIFACTS"])
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, out / "status-page.png")
    finally:
        keeper.cancel()
        chain_metrics.shutdown()
        rt.request_stop()
        await asyncio.wait_for(task, 15)
        await standin.stop()
        await bus.drain()
