"""The pricing process end to end: its table in KV, the admin API's auth, roles, audit and refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import httpx
import nats
import pytest

from baton_common.schemas import decode
from baton_common.schemas.audit import AUDIT_STREAM, AuditEvent
from baton_common.schemas.chain import CHAIN_BUCKET, EthUsdRate
from baton_common.schemas.pricing import PRICING_BUCKET, TABLE_KEY, PriceTable
from tests.helpers import service_env
from tests.pricing.conftest import ADMIN_TOKEN, GATEWAY, READER_TOKEN, PricingProc, make


async def read_table(url: str) -> PriceTable:
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value(PRICING_BUCKET)
        return decode((await kv.get(TABLE_KEY)).value, PriceTable)
    finally:
        await nc.close()


async def audit_events(url: str) -> list[AuditEvent]:
    """Read straight from the BATON_AUDIT stream, not through the API."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        info = await js.stream_info(AUDIT_STREAM)
        events = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await js.get_msg(AUDIT_STREAM, seq)
            events.append(decode(msg.data, AuditEvent))
        return events
    finally:
        await nc.close()


def test_the_configured_table_is_published(pricing: PricingProc) -> None:
    table = asyncio.run(read_table(pricing.nats.url))
    assert table.base.value == Fraction(6, 5)
    assert table.base_for(GATEWAY) == 800
    assert (table.gateway(GATEWAY).floor.value, table.gateway(GATEWAY).ceiling.value) == (700, 900)  # type: ignore[union-attr]
    assert table.capability_price(33, "m", GATEWAY) == Fraction(2 * 10**12, 2000)  # 0.000002 USD at 2000 USD/ETH
    assert table.capability_price(27, "sd", GATEWAY) == Fraction(4768371, 10**6)
    assert table.eth_usd == 2000.0
    text = pricing.metrics()
    assert 'baton_pricing_transcoding_price_wei{sender="default"} 1.2' in text
    assert 'livepeer_price_per_capability{model_name="m",pipeline="llm"} 1e+09' in text
    assert f'baton_pricing_effective_price_wei{{gateway="{GATEWAY}",model_id="",pipeline="transcoding"}} 800.0' in text


def test_auth_is_required_and_roles_are_enforced(pricing: PricingProc) -> None:
    body = {"gateway": GATEWAY, "price": {"amount": "850"}, "reason": "test"}
    with pricing.client(None) as anonymous:
        r = anonymous.get("/prices")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert anonymous.put("/prices", json=body).status_code == 401
        assert anonymous.post("/setPriceForBroadcaster", data={"pricePerUnit": "1", "pixelsPerUnit": "1",
                                                              "broadcasterEthAddr": "default"}).status_code == 401
    with pricing.client("wrong-token-0123456789") as stranger:
        assert stranger.get("/prices").status_code == 401
    with pricing.client(READER_TOKEN) as bob:
        assert bob.get("/prices").status_code == 200
        assert bob.get("/prices/history").status_code == 200
        r = bob.put("/prices", json=body)
        assert r.status_code == 403 and "read-only" in r.json()["message"]
        assert bob.post("/setOrchestratorConfig", data={"pricePerUnit": "1", "pixelsPerUnit": "1"}).status_code == 403
    assert asyncio.run(read_table(pricing.nats.url)).base_for(GATEWAY) == 800  # nothing changed


def test_a_change_reaches_a_watcher_within_a_second_and_is_audited(pricing: PricingProc) -> None:
    async def run() -> tuple[PriceTable, float, list[AuditEvent]]:
        nc = await nats.connect(pricing.nats.url)
        kv = await nc.jetstream().key_value(PRICING_BUCKET)
        watcher = await kv.watch(TABLE_KEY)
        first = await watcher.updates(timeout=5)
        before = decode(first.value, PriceTable)
        started = time.monotonic()
        with pricing.client() as alice:
            r = await asyncio.to_thread(alice.put, "/prices", json={
                "gateway": GATEWAY, "price": {"amount": "0.0000004", "currency": "USD"},
                "ceiling": {"amount": "880"}, "reason": "new deal #42"})
        assert r.status_code == 200, r.text
        while True:
            entry = await watcher.updates(timeout=2)
            if entry is not None and entry.value:
                table = decode(entry.value, PriceTable)
                if table.version > before.version:
                    break
        elapsed = time.monotonic() - started
        await watcher.stop()
        await nc.close()
        return table, elapsed, await audit_events(pricing.nats.url)

    table, elapsed, events = asyncio.run(run())
    assert elapsed < 1.0
    assert table.base_for(GATEWAY) == Fraction(4 * 10**11, 2000)  # 0.0000004 USD at 2000 = 2e8 wei per pixel
    assert table.clamp(table.base_for(GATEWAY), GATEWAY) == 880  # the new ceiling holds it
    event = events[-1]
    assert (event.actor, event.action, event.target, event.reason) == ("alice", "prices.set", GATEWAY, "new deal #42")
    assert event.old["price"]["price"] == "800wei" and event.old["ceiling"]["price"] == "900wei"
    assert event.new["price"] == {"price": "0.0000004USD", "amount": "1/2500000", "currency": "USD", "pixels_per_unit": 1}
    with pricing.client(READER_TOKEN) as bob:
        shown = bob.get("/prices/history", params={"limit": 1}).json()
    assert [e["event_id"] for e in shown] == [event.event_id]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"price": {"amount": "1"}}, "reason"),
        ({"gateway": "0xnope", "price": {"amount": "1"}, "reason": "r"}, "not an ETH address"),
        ({"price": {"amount": "-1"}, "reason": "r"}, "decimal"),
        ({"price": {"amount": "1e3"}, "reason": "r"}, "decimal"),
        ({"price": {"amount": "1", "currency": "EUR"}, "reason": "r"}, "EUR"),
        ({"price": {"amount": "1", "pixels_per_unit": 0}, "reason": "r"}, "pixels_per_unit"),
        ({"pipeline": "llm", "price": {"amount": "1"}, "reason": "r"}, "model_id"),
        ({"pipeline": "teleport", "model_id": "m", "price": {"amount": "1"}, "reason": "r"}, "unknown pipeline"),
        ({"gateway": GATEWAY, "floor": {"amount": "10"}, "ceiling": {"amount": "5"}, "reason": "r"}, "above ceiling"),
        ({"clear": ["price"], "reason": "r"}, "cannot be removed"),
        ({"price": {"amount": "9" * 30}, "reason": "r"}, "2\\^63-1"),
        ({"reason": "r"}, "nothing to change"),
        ({"price": {"amount": "1"}, "reason": "r", "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(pricing: PricingProc, body: dict, why: str) -> None:
    before = asyncio.run(read_table(pricing.nats.url))
    audited = len(asyncio.run(audit_events(pricing.nats.url)))
    with pricing.client() as alice:
        r = alice.put("/prices", json=body)
    assert r.status_code == 400, r.text
    import re

    assert re.search(why, r.json()["message"]), r.json()
    after = asyncio.run(read_table(pricing.nats.url))
    assert after.version == before.version and after.base == before.base and after.gateways == before.gateways
    assert len(asyncio.run(audit_events(pricing.nats.url))) == audited


def test_go_livepeer_request_formats(pricing: PricingProc) -> None:
    other = "0x" + "Cd" * 20
    with pricing.client() as alice:
        r = alice.post("/setPriceForBroadcaster", data={"pricePerUnit": "3", "pixelsPerUnit": "2",
                                                        "broadcasterEthAddr": other})
        assert r.status_code == 200
        assert r.text == f"Price per pixel set to 3 wei for 2 pixels for broadcaster {other}\n"
        r = alice.post(f"/setPriceForBroadcaster?pricePerUnit=0.5&pixelsPerUnit=1&currency=USD&broadcasterEthAddr={other}")
        assert r.status_code == 200  # Go's FormValue reads the query string too
        r = alice.post("/setPriceForBroadcaster", data={"pricePerUnit": "1", "pixelsPerUnit": "1",
                                                        "broadcasterEthAddr": "0x12"})
        assert (r.status_code, r.text) == (400, "broadcasterEthAddr is not a valid eth address, provided 0x12\n")
        r = alice.post("/setPriceForBroadcaster", data={"pricePerUnit": "-1", "pixelsPerUnit": "1",
                                                        "broadcasterEthAddr": "default"})
        assert (r.status_code, r.text) == (400, "price unit must be greater than or equal to 0, provided -1\n")
        r = alice.post("/setOrchestratorConfig", data={"pricePerUnit": "1500", "pixelsPerUnit": "1000",
                                                       "blockRewardCut": "10"})
        assert r.status_code == 400 and "blockRewardCut" in r.text
        table = asyncio.run(read_table(pricing.nats.url))
        assert table.base.value == Fraction(6, 5)  # the refused request changed nothing
        r = alice.post("/setOrchestratorConfig", data={"pricePerUnit": "1500", "pixelsPerUnit": "1000"})
        assert r.status_code == 200
    table = asyncio.run(read_table(pricing.nats.url))
    assert table.base.value == Fraction(3, 2)
    assert table.base_for(other) == Fraction(10**18, 2 * 2000)  # 0.5 USD at 2000 USD/ETH
    events = asyncio.run(audit_events(pricing.nats.url))
    assert [e.reason for e in events[-3:]] == ["go-livepeer /setPriceForBroadcaster"] * 2 + [
        "go-livepeer /setOrchestratorConfig"]


def test_a_change_survives_a_restart_and_reset_brings_back_the_config(tmp_path: Path) -> None:
    proc = make(tmp_path, "-pricePerUnit=1000")
    try:
        proc.start()
        with proc.client() as alice:
            assert alice.put("/prices", json={"price": {"amount": "2000"}, "reason": "raise"}).status_code == 200
        assert proc.stop() == 0
        proc.start()
        assert asyncio.run(read_table(proc.nats.url)).base.value == 2000
        with proc.client() as alice:
            rule = alice.get("/prices").json()["rules"][0]
            assert (rule["source"], rule["price"]["price"]) == ("api", "2000wei")
            r = alice.post("/prices/reset", json={"reason": "back to config"})
            assert r.status_code == 200, r.text
            assert alice.post("/prices/reset", json={"reason": "again"}).status_code == 404
        assert asyncio.run(read_table(proc.nats.url)).base.value == 1000
    finally:
        if proc.proc is not None:
            proc.stop()
        proc.nats.stop()


def test_a_stale_feed_keeps_the_last_good_rate(tmp_path: Path) -> None:
    proc = make(tmp_path, "-pricePerUnit=0.00000001USD", "-network=arbitrum-one-mainnet")

    async def put_rate(answer: int, updated_at: float) -> None:
        nc = await nats.connect(proc.nats.url)
        kv = await nc.jetstream().key_value(CHAIN_BUCKET)
        rate = EthUsdRate(feed="0x639f", answer=answer, decimals=8, updated_at=updated_at, read_at=time.time())
        from baton_common.schemas import encode

        await kv.put("eth-usd", encode(rate))
        await nc.close()

    async def wait_table(check: object, timeout: float = 5.0) -> PriceTable:
        deadline = time.monotonic() + timeout
        while True:
            try:
                table = await read_table(proc.nats.url)
                if check(table):  # type: ignore[operator]
                    return table
            except Exception:
                pass
            assert time.monotonic() < deadline, "the table did not change"
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        nc = await nats.connect(proc.nats.url)
        await nc.jetstream().create_key_value(bucket=CHAIN_BUCKET, history=1)
        await nc.close()
        await put_rate(2000 * 10**8, time.time() - 3 * 3600)  # the only reading there is, and stale
        await asyncio.to_thread(proc.start)
        stale = await wait_table(lambda t: t.eth_usd == 2000.0)
        assert stale.eth_usd_stale and stale.base.value == Fraction(10**10, 2000)  # used, flagged
        assert "baton_pricing_eth_usd_stale 1.0" in proc.metrics()
        await put_rate(4000 * 10**8, time.time())
        fresh = await wait_table(lambda t: not t.eth_usd_stale)
        assert fresh.base.value == Fraction(10**10, 4000) and fresh.eth_usd == 4000.0
        assert "baton_pricing_eth_usd_stale 0.0" in proc.metrics()
        await put_rate(1000 * 10**8, time.time() - 3 * 3600)  # a stale reading: the last good rate stays
        await asyncio.sleep(0.3)
        kept = await read_table(proc.nats.url)
        assert (kept.eth_usd, kept.eth_usd_stale, kept.version) == (4000.0, False, fresh.version)
        # The rate going stale as time passes (no new reading) is Pricer.check_staleness, run every second:
        # tests/pricing/test_domain.py::test_a_stale_rate_keeps_the_last_good_price_and_says_so.

    try:
        asyncio.run(scenario())
    finally:
        if proc.proc is not None:
            proc.stop()
        proc.nats.stop()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-pricePerUnit=abc"], "-pricePerUnit"),
        (["-pixelsPerUnit=0"], "-pixelsPerUnit"),
        (["-pricePerGateway={\"gateways\":[{\"ethaddress\":\"0x1\"}]}"], "-pricePerGateway"),
        (["-network=arbitrum-one-mainnet"], "-pricePerUnit"),
        (["-pricePerUnit=1USD"], "BATON_PRICING_ETH_USD_RATE"),
    ],
)
def test_a_bad_setting_exits_2_naming_it(args: list[str], named: str) -> None:
    env = service_env("nats://127.0.0.1:1")
    done = subprocess.run([sys.executable, "-m", "baton_pricing", *args], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert named in done.stderr.decode()


def test_a_bad_tokens_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "tokens"
    bad.write_text("carol superuser carol-token-0123456789\n")
    env = service_env("nats://127.0.0.1:1", BATON_PRICING_ADMIN_TOKENS_FILE=str(bad))
    done = subprocess.run([sys.executable, "-m", "baton_pricing"], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2 and "superuser" in done.stderr.decode() and "carol-token" not in done.stderr.decode()


def test_schema_is_served(pricing: PricingProc) -> None:
    schema = httpx.get(f"{pricing.admin}/schema/openapi.json").json()
    assert {"/prices", "/prices/history", "/setPriceForBroadcaster", "/setOrchestratorConfig"} <= set(schema["paths"])
    assert json.dumps(schema).count("bearer") >= 1
    assert ADMIN_TOKEN not in json.dumps(schema)


@pytest.mark.parametrize("since", ["nan", "NaN", "-inf", "1e400", "-1", "abc"])
def test_a_history_query_with_a_time_that_is_no_time_is_a_400(pricing: PricingProc, since: str) -> None:
    with pricing.client(READER_TOKEN) as bob:
        r = bob.get("/prices/history", params={"since": since})
        assert r.status_code == 400, (r.status_code, r.text)
        assert "since" in r.text
        assert bob.get("/prices/history").status_code == 200


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "x"])
def test_a_history_limit_out_of_range_is_a_400(pricing: PricingProc, limit: str) -> None:
    with pricing.client(READER_TOKEN) as bob:
        assert bob.get("/prices/history", params={"limit": limit}).status_code == 400
