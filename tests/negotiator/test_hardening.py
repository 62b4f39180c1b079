"""Attacks a hostile gateway can make on a paid (on-chain, table-priced) negotiator, each refused.

A cheap and a dear model share capability 27: a quote, payment or image header
for one must never buy the other's work, or more work than was paid for.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction

import httpx
import nats
import pytest
from eth_account import Account
from eth_utils import keccak

from baton_common.pm import Balances
from baton_common.pm_nats import KvBalanceStore
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas import encode
from baton_common.schemas.payments import BALANCES
from baton_common.schemas.pricing import PRICES, TABLE_KEY, CapabilityPrice, GatewayPrice, PriceTable, WeiPrice
from baton_common.streams import ensure_kv
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.fake_chain import FakeChain
from tests.negotiator.gateway import TestGateway, ai_caps
from tests.negotiator.workers import TestWorker

ORCH = Account.create()
CHEAP, DEAR = 1, 1_000_000


def call(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    return asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture(scope="module")
async def chain(module_nc: nats.NATS) -> AsyncIterator[FakeChain]:
    fake = await FakeChain(module_nc, ORCH.address).start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def table(module_nc: nats.NATS) -> None:
    kv = await ensure_kv(module_nc.jetstream(), PRICES)
    prices = PriceTable(base=WeiPrice(num=1000), auto_adjust=False, at=time.time(), gateways={"default": GatewayPrice()},
                        capabilities=(CapabilityPrice(capability=27, model_id="cheap-model", price=WeiPrice(num=CHEAP)),
                                      CapabilityPrice(capability=27, model_id="dear-model", price=WeiPrice(num=DEAR)),
                                      CapabilityPrice(capability=28, model_id="echo-model", price=WeiPrice(num=DEAR))))
    await kv.put(TABLE_KEY, encode(prices))


@pytest.fixture(scope="module")
def onchain(module_nats: str, chain: FakeChain, table: None,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    folder = tmp_path_factory.mktemp("hardening")
    (folder / "secret").write_text("22" * 32)
    keystore = folder / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(ORCH.key, "pw", kdf="scrypt", iterations=2**10)))
    running = start_negotiator(module_nats, folder / "state", BATON_NETWORK="arbitrum-one-mainnet",
                               BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(folder / "secret"),
                               BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(keystore), BATON_NEGOTIATOR_ETH_PASSWORD="pw",
                               BATON_NEGOTIATOR_PRICE_SOURCE="table", BATON_NEGOTIATOR_MAX_SESSIONS="2")
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def echo(module_nc: nats.NATS, workers_kv) -> AsyncIterator[TestWorker]:  # noqa: ANN001
    worker = await TestWorker(module_nc, workers_kv, "hardening-echo",
                              models=(("text-to-image", "cheap-model"), ("text-to-image", "dear-model"),
                                      ("image-to-image", "echo-model"))).start()
    await asyncio.sleep(0.5)
    yield worker
    await worker.stop()


@pytest.fixture
def gw(onchain: RunningNegotiator) -> Iterator[TestGateway]:
    gateway = TestGateway("127.0.0.1", onchain.grpc_port)
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
async def balances(module_nc: nats.NATS, onchain: RunningNegotiator) -> Balances:
    return Balances(KvBalanceStore(await ensure_kv(module_nc.jetstream(), BALANCES)))


async def test_payment_for_a_cheap_quote_cannot_pin_a_dear_model_s_session(gw: TestGateway, echo: TestWorker,
                                                                          balances: Balances) -> None:
    cheap = ai_caps(27, "cheap-model")
    info = await call(gw.get_orchestrator, caps=cheap)
    with gw.http() as client:
        for caps in (cheap, None):
            seg = gw.segment_header(info, manifest=b"27_dear-model", caps=caps)
            r = await call(client.post, f"{info.transcoder}/payment", content=b"",
                           headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
            assert r.status_code == 400, r.text
            assert "manifestId does not match" in r.text
    assert await balances.fixed_price(gw.address, "27_dear-model") is None
    assert not await balances.balance(gw.address, "27_dear-model")
    seg = gw.segment_header(info, manifest=b"27_cheap-model", caps=cheap)  # the honest payment still lands
    with gw.http() as client:
        r = await call(client.post, f"{info.transcoder}/payment", content=b"",
                       headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
    assert r.status_code == 200, r.text
    assert await balances.fixed_price(gw.address, "27_cheap-model") == CHEAP


def ev(info: lp_rpc_pb2.OrchestratorInfo) -> Fraction:
    params = info.ticket_params
    return Fraction(int.from_bytes(params.face_value, "big") * int.from_bytes(params.win_prob, "big"), 2**256 - 1)


def ticketless(sender: bytes) -> str:
    """A Livepeer-Payment with no tickets: it names a sender and pays nothing."""
    payment = lp_rpc_pb2.Payment(sender=sender, expected_price=lp_rpc_pb2.PriceInfo(pricePerUnit=1, pixelsPerUnit=1))
    return base64.b64encode(payment.SerializeToString()).decode()


async def test_one_ticket_does_not_buy_a_job_costing_more_than_the_balance(gw: TestGateway, echo: TestWorker,
                                                                          balances: Balances) -> None:
    caps = ai_caps(27, "dear-model")
    info = await call(gw.get_orchestrator, caps=caps)
    one = ev(info)
    side = math.isqrt(int(one / DEAR)) + 64  # width x height x DEAR > one ticket's EV
    jobs = len(echo.jobs)
    with gw.http() as client:
        r = await call(client.post, f"{info.transcoder}/text-to-image",
                       json={"prompt": "x", "model_id": "dear-model", "width": side, "height": side},
                       headers={"Livepeer-Payment": gw.payment_header(info),
                                "Livepeer-Segment": gw.segment_header(info, manifest=b"27_dear-model")})
        assert r.status_code == 400 and "Insufficient balance" in r.text, r.text
        assert len(echo.jobs) == jobs
        assert await balances.balance(gw.address, "27_dear-model") == one  # credited, nothing debited
        small = math.isqrt(int(one / DEAR)) // 2  # a job the balance covers runs and is debited
        r = await call(client.post, f"{info.transcoder}/text-to-image",
                       json={"prompt": "x", "model_id": "dear-model", "width": small, "height": small},
                       headers={"Livepeer-Payment": ticketless(gw.address),
                                "Livepeer-Segment": gw.segment_header(info, manifest=b"27_dear-model")})
        assert r.status_code == 200, r.text
    assert await balances.balance(gw.address, "27_dear-model") == one - DEAR * small * small


async def test_unpaid_segments_open_no_session_and_leave_get_orchestrator_to_paying_gateways(
        onchain: RunningNegotiator, echo: TestWorker) -> None:
    for _ in range(3):  # -maxSessions is 2
        attacker = TestGateway("127.0.0.1", onchain.grpc_port)
        try:
            info = await call(attacker.get_orchestrator)
            seg = attacker.segment_header(info, manifest=b"x", body_hash=keccak(b"junk"))
            with attacker.http() as client:
                r = await call(client.post, f"{info.transcoder}/segment", content=b"junk",
                               headers={"Livepeer-Payment": ticketless(attacker.address), "Livepeer-Segment": seg})
            assert r.status_code == 400 and "Insufficient balance" in r.text, r.text
        finally:
            attacker.close()
    honest = TestGateway("127.0.0.1", onchain.grpc_port)
    try:
        assert (await call(honest.get_orchestrator)).ticket_params.recipient  # not OrchestratorCapped
    finally:
        honest.close()
    metrics = httpx.get(f"http://127.0.0.1:{onchain.health_port}/metrics").text
    assert "livepeer_current_sessions_total 0.0" in metrics


async def test_a_segment_uri_is_fetched_only_for_a_paying_gateway_and_never_from_internal_addresses(
        gw: TestGateway, echo: TestWorker) -> None:
    hits: list[str] = []

    class Internal(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"internal-secret")

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Internal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = await call(gw.get_orchestrator)
        urls = [f"http://127.0.0.1:{server.server_address[1]}/admin", f"http://localhost:{server.server_address[1]}/a",
                f"http://[::ffff:127.0.0.1]:{server.server_address[1]}/b", "http://169.254.169.254/latest/meta-data",
                "http://10.0.0.1/x", "http://0.0.0.0/x"]
        with gw.http() as client:
            for headers in ({}, {"Livepeer-Segment": "garbage"}):  # no credentials: refused before any fetch
                r = await call(client.post, f"{info.transcoder}/segment", content=urls[0],
                               headers={"Content-Type": "application/vnd+livepeer.uri", **headers})
                assert 400 <= r.status_code < 500 and "internal-secret" not in r.text, r.text
            for url in urls:  # a paying gateway: internal addresses are refused
                seg = gw.segment_header(info, manifest=b"ssrf", body_hash=keccak(b"internal-secret"))
                r = await call(client.post, f"{info.transcoder}/segment", content=url,
                               headers={"Content-Type": "application/vnd+livepeer.uri",
                                        "Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
                assert r.status_code == 400, (url, r.text)
                assert "segment URI refused" in r.text, (url, r.text)
        assert hits == []
    finally:
        server.shutdown()
