"""Issue 9 end to end: the real pricing service's table quoted by a real negotiator (price_source = table).

Paid mode, chain data from the negotiator tests' fake chain publisher (its gas
price can spike); the operator changes prices with `baton price set` against
pricing's admin API; a gateway (grpcio, tests/negotiator/gateway.py) reads the
quotes from GetOrchestrator and pays segments served by an echo transcode worker.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import nats
import pytest
from eth_account import Account
from eth_utils import keccak

from baton_common.pm import Balances
from baton_common.pm_nats import KvBalanceStore
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas import encode
from baton_common.schemas.chain import EthUsdRate, GasPrice
from baton_common.schemas.payments import BALANCES
from baton_common.schemas.workers import WORKERS
from baton_common.streams import ensure_kv
from tests.e2e.conftest import start_pricing
from tests.helpers import PrivateNats
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.fake_chain import FakeChain
from tests.negotiator.gateway import TestGateway
from tests.negotiator.workers import TestWorker
from tests.pricing.conftest import ADMIN_TOKEN, PricingProc

ORCH = Account.create()
BOUNDED = Account.create()  # the gateway with a deal: floor 900, ceiling 1050 wei per pixel
NORMAL_GAS, SPIKE_GAS = 1_000_000_000, 100_000_000_000
PROFILES = (lp_rpc_pb2.VideoProfile(name="P144p", width=256, height=144, bitrate=400000, fps=30),)
PIXELS = 256 * 144 * 2  # what the echo transcode worker reports for one segment


class SpikingChain(FakeChain):
    """The fake chain publisher, with a gas price the test sets."""

    gas = NORMAL_GAS

    def values(self) -> dict[str, object]:
        values = super().values()
        values["gas-price"] = GasPrice(read_at=time.time(), suggested_wei=self.gas)
        return values

    async def set_gas(self, wei: int) -> None:
        self.gas = wei
        await self._put()

    async def set_eth_usd(self, usd: int, *, age: float = 0.0) -> None:
        """The chain service's ``eth-usd``: a Chainlink answer (8 decimals) the feed updated ``age`` seconds ago."""
        now = time.time()
        await self.kv.put("eth-usd", encode(EthUsdRate(read_at=now, feed="0x" + "5f" * 20, answer=usd * 10**8,
                                                       decimals=8, updated_at=now - age)))


@pytest.fixture(scope="module")
async def nc(e2e_nats: PrivateNats) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(e2e_nats.url)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def chain(nc: nats.NATS) -> AsyncIterator[SpikingChain]:
    fake = await SpikingChain(nc, ORCH.address).start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
def pricing(e2e_nats: PrivateNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PricingProc]:
    bounds = json.dumps({"bounds": [{"gateway": BOUNDED.address.lower(), "floor": "900", "ceiling": "1050"}]})
    proc = start_pricing(e2e_nats, tmp_path_factory.mktemp("pricing"), "-pricePerUnit=1000", "-pixelsPerUnit=1",
                         BATON_PRICING_PRICE_BOUNDS=bounds, BATON_PRICING_ETH_USD_MAX_AGE="60")
    yield proc
    if proc.proc is not None:
        proc.stop()


@pytest.fixture(scope="module")
def negotiator(e2e_nats: PrivateNats, chain: SpikingChain, pricing: PricingProc,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    folder = tmp_path_factory.mktemp("onchain")
    (folder / "secret").write_text("33" * 32)
    keystore = folder / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(ORCH.key, "pw", kdf="scrypt", iterations=2**10)))
    running = start_negotiator(e2e_nats.url, folder / "state", BATON_NETWORK="arbitrum-one-mainnet",
                               BATON_NEGOTIATOR_PRICE_SOURCE="table",
                               BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(folder / "secret"),
                               BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(keystore), BATON_NEGOTIATOR_ETH_PASSWORD="pw")
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def transcoder(nc: nats.NATS, negotiator: RunningNegotiator) -> AsyncIterator[TestWorker]:
    worker = await TestWorker(nc, await ensure_kv(nc.jetstream(), WORKERS), "e2e-echo-tc", kind="transcode",
                              models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    yield worker
    await worker.stop()


@pytest.fixture(scope="module")
async def balances(nc: nats.NATS, negotiator: RunningNegotiator) -> Balances:
    return Balances(KvBalanceStore(await ensure_kv(nc.jetstream(), BALANCES)))


@pytest.fixture
def admin_token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(ADMIN_TOKEN + "\n")
    return path


def call(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    return asyncio.to_thread(fn, *args, **kwargs)


def gateway(negotiator: RunningNegotiator, key: bytes | None = None) -> TestGateway:
    return TestGateway("127.0.0.1", negotiator.grpc_port, **({"key": key} if key else {}))


async def price_set(pricing: PricingProc, token: Path, *args: str) -> None:
    done = await call(subprocess.run, [sys.executable, "-m", "baton_cli", "price", "--url", pricing.admin,
                                       "--token-file", str(token), "set", *args, "--reason", "e2e"],
                      capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


async def quote_becomes(gw: TestGateway, wanted: int | Fraction, timeout: float = 1.0) -> float:
    """Seconds until GetOrchestrator quotes ``wanted`` wei per pixel (reduced, as PriceInfo carries it); fails past
    ``timeout``."""
    wanted = Fraction(wanted)
    started = time.monotonic()
    while True:
        info = await call(gw.get_orchestrator)
        if (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (wanted.numerator, wanted.denominator):
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"still quoting {info.price_info}, wanted {wanted}"
        await asyncio.sleep(0.02)


async def until(check, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await call(check):
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)


def ev(info: lp_rpc_pb2.OrchestratorInfo) -> Fraction:
    params = info.ticket_params
    return Fraction(int.from_bytes(params.face_value, "big") * int.from_bytes(params.win_prob, "big"), 2**256 - 1)


async def pay_segment(gw: TestGateway, info: lp_rpc_pb2.OrchestratorInfo, seq: int) -> lp_rpc_pb2.TranscodeResult:
    body = b"\x47" * 188 * 4
    seg = gw.segment_header(info, manifest=b"e2e-stream", seq=seq, body_hash=keccak(body), profiles=PROFILES)
    with gw.http() as client:
        r = await call(client.post, f"{info.transcoder}/segment", content=body,
                       headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
    assert r.status_code == 200, r.text
    result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
    assert result.WhichOneof("result") == "data", result.error
    return result


async def test_baton_price_set_shows_in_get_orchestrator_within_a_second(
        negotiator: RunningNegotiator, pricing: PricingProc, admin_token: Path) -> None:
    gw = gateway(negotiator)
    try:
        await quote_becomes(gw, 1010, timeout=5)  # 1000 from pricing's table, auto-adjusted by 1 + 1/100
        await price_set(pricing, admin_token, "--price", "1200")
        assert await quote_becomes(gw, 1212) < 1.0  # counted from the command's return
    finally:
        gw.close()


async def test_a_session_keeps_the_price_its_first_payment_fixed(
        negotiator: RunningNegotiator, pricing: PricingProc, transcoder: TestWorker, balances: Balances,
        admin_token: Path) -> None:
    gw = gateway(negotiator)
    try:
        await price_set(pricing, admin_token, "--price", "1200")
        await quote_becomes(gw, 1212, timeout=2)
        info = await call(gw.get_orchestrator)
        session = info.auth_token.session_id
        first = await pay_segment(gw, info, 1)
        assert sum(s.pixels for s in first.data.segments) == PIXELS
        assert await balances.fixed_price(gw.address, session) == 1212
        assert await balances.balance(gw.address, session) == ev(info) - 1212 * PIXELS

        await price_set(pricing, admin_token, "--price", "1400")
        await quote_becomes(gw, 1414)  # new sessions get the new price at once
        await pay_segment(gw, info, 2)  # the same session (auth token, ticket params) goes on
        assert await balances.fixed_price(gw.address, session) == 1212
        assert await balances.balance(gw.address, session) == 2 * ev(info) - 1212 * 2 * PIXELS
    finally:
        gw.close()


async def test_the_floor_and_ceiling_hold_the_quote_under_a_gas_spike_and_a_mistake(
        negotiator: RunningNegotiator, pricing: PricingProc, chain: SpikingChain, admin_token: Path) -> None:
    bounded, other = gateway(negotiator, bytes(BOUNDED.key)), gateway(negotiator)
    try:
        await price_set(pricing, admin_token, "--price", "1000")
        await quote_becomes(bounded, 1010, timeout=2)  # within [900, 1050]
        await quote_becomes(other, 1010, timeout=2)
        try:
            # 100 gwei: face value 100 x txCost exceeds the sender's reserve allocation (1e18), the overhead
            # txCost / faceValue goes from 1/100 to 0.12 and the auto-adjusted price to 1120.
            await chain.set_gas(SPIKE_GAS)
            await quote_becomes(other, 1120, timeout=2)
            await quote_becomes(bounded, 1050)  # the deal's ceiling
            # go-livepeer's series of the quote: per gateway the table names, any other sender as default.
            text = await call(httpx.get, f"http://127.0.0.1:{negotiator.health_port}/metrics")
            assert f'livepeer_transcoding_price{{sender="{BOUNDED.address.lower()}"}} 1050.0' in text.text
            assert 'livepeer_transcoding_price{sender="default"} 1120.0' in text.text
            assert other.address.hex() not in text.text
        finally:
            await chain.set_gas(NORMAL_GAS)
        await quote_becomes(bounded, 1010, timeout=2)
        await price_set(pricing, admin_token, "--price", "800")  # an operator's mistake
        await quote_becomes(other, 808)
        await quote_becomes(bounded, 900)  # the deal's floor
    finally:
        bounded.close()
        other.close()
        await price_set(pricing, admin_token, "--price", "1000")


async def test_a_usd_price_follows_the_eth_rate_within_the_floor_and_ceiling_and_a_stale_rate_keeps_the_last(
        negotiator: RunningNegotiator, pricing: PricingProc, chain: SpikingChain, admin_token: Path) -> None:
    """3 USD per 10^12 pixels: 3e6 / rate wei per pixel (1000 at 3000 USD/ETH), auto-adjusted by 1 + 1/100.
    The deal of BOUNDED holds it within [900, 1050] wei whichever way the rate moves."""
    bounded, other = gateway(negotiator, bytes(BOUNDED.key)), gateway(negotiator)
    try:
        await chain.set_eth_usd(3000)
        await price_set(pricing, admin_token, "--price", "3USD", "--pixels-per-unit", str(10**12))
        await quote_becomes(other, 1010, timeout=2)
        await quote_becomes(bounded, 1010)

        await chain.set_eth_usd(2000)  # ETH falls: more wei for the same dollars
        await quote_becomes(other, 1515, timeout=3)
        await quote_becomes(bounded, 1050)  # the deal's ceiling
        # ETH rises, in a reading the feed made 58 s ago (the limit is 60 s here): fewer wei.
        await chain.set_eth_usd(4000, age=58)
        await quote_becomes(other, Fraction(1515, 2), timeout=3)
        await quote_becomes(bounded, 900)  # the deal's floor

        # The feed stops updating: past 60 s the rate in use is stale, the metric says so, the price stays.
        await until(lambda: "baton_pricing_eth_usd_stale 1.0" in pricing.metrics(), 5)
        # A reading older than the one in use changes nothing either.
        await chain.set_eth_usd(2000, age=3 * 3600)
        await asyncio.sleep(1.0)
        for gw, last in ((other, Fraction(1515, 2)), (bounded, Fraction(900))):
            info = await call(gw.get_orchestrator)
            assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (last.numerator, last.denominator)
        text = pricing.metrics()
        assert "baton_pricing_eth_usd 4000.0" in text and "baton_pricing_eth_usd_stale 1.0" in text
        assert "the ETH/USD rate is stale" in pricing.log.read_text()

        # A fresh reading: prices follow it again.
        await chain.set_eth_usd(3000)
        await quote_becomes(other, 1010, timeout=3)
        await quote_becomes(bounded, 1010)
        await until(lambda: "baton_pricing_eth_usd_stale 0.0" in pricing.metrics(), 5)
    finally:
        bounded.close()
        other.close()
        await price_set(pricing, admin_token, "--price", "1000")
