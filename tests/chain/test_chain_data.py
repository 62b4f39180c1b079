"""Chain data in ``baton-chain`` from the real protocol, the sender cold path, nonce cleanup, and the lease."""

from __future__ import annotations

import asyncio
import contextlib
import time
from fractions import Fraction

import httpx
import msgspec
import nats
from eth_utils import to_checksum_address
from nats.js.errors import KeyNotFoundError

from baton_common.bus import BATON_CODE_HEADER, Bus
from baton_common.pm_nats import STATE_KEY
from baton_common.schemas import decode, encode
from baton_common.schemas.chain import (
    CHAIN_BUCKET,
    CHAIN_LEASE_BUCKET,
    CHAIN_LEASE_TTL,
    SENDER_LOOKUP_SUBJECT,
    ChainLease,
    ChainValue,
    SenderInfo,
    SenderLookup,
)
from baton_common.schemas.payments import NONCES_BUCKET
from baton_pricing.bus import ChainRate
from baton_pricing.domain import Rate
from tests.common.pm.pm_gateway import Gateway

from .conftest import STAKE, wait_for


async def _value(kv, key: str):
    try:
        return decode((await kv.get(key)).value, ChainValue)
    except KeyNotFoundError:
        return None


async def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_chain_data_sender_lookup_and_nonce_cleanup(livepeer, bus, chain_process, orchestrator) -> None:
    lp = livepeer
    me = orchestrator.address
    lp.register_orchestrator(me, STAKE)
    lp.send(lp.ServiceRegistry.functions.setServiceURI("https://orch.example:8935"), me)
    lp.next_round()
    gateway = Gateway.random()
    lp.fund_sender(to_checksum_address(gateway.address), 3 * 10**18, 2 * 10**18)
    service = chain_process(BATON_CHAIN_NONCE_CLEANUP_MARGIN="5", BATON_CHAIN_REWARD="false")
    service.start()
    nc = await nats.connect(bus.url)
    try:
        js = nc.jetstream()
        kv = await _until(lambda: _bucket(js, CHAIN_BUCKET), 60, "the chain bucket")
        head = await _until(lambda: _value(kv, "orchestrator"), 60, "the orchestrator status")
        assert head.active and head.address == me.lower() and head.service_uri == "https://orch.example:8935"
        block = lp.block()
        await _until(lambda: _head_at(kv, block), 10, "head at the latest block")  # anvil has no L1 blocks
        round_state = await _value(kv, "round")
        assert (round_state.round, round_state.initialized, round_state.round_length) == (lp.round(), True, 100)
        round_hash = await _value(kv, f"round-hash.{lp.round()}")
        expected = lp.RoundsManager.functions.blockHashForRound(lp.round()).call()
        assert round_hash.block_hash == "0x" + expected.hex()
        params = await _value(kv, "params")
        assert (params.ticket_validity_period, params.active_pool_size) == (2, 1)
        gas = await _value(kv, "gas-price")
        assert gas.suggested_wei == lp.w3.eth.gas_price
        assert time.time() - gas.read_at < 10

        # The cold path: a new sender is answered and kept in the bucket.
        reply = await nc.request(SENDER_LOOKUP_SUBJECT, encode(SenderLookup(sender="0x" + gateway.address.hex())),
                                 timeout=10)
        info = decode(reply.data, SenderInfo)
        assert (info.deposit, info.reserve, info.withdraw_round) == (3 * 10**18, 2 * 10**18, 0)
        stored = await _value(kv, "sender.0x" + gateway.address.hex())
        assert stored.deposit == 3 * 10**18
        bad = await nc.request(SENDER_LOOKUP_SUBJECT, encode(SenderLookup(sender="0x12")), timeout=10)
        assert bad.headers and bad.headers.get(BATON_CODE_HEADER) == "bad_request"

        # Funds move on chain: the TicketBroker events show them within a poll, in the same round.
        round_now = lp.round()
        sender = to_checksum_address(gateway.address)
        lp.send(lp.TicketBroker.functions.fundDeposit(), sender, value=10**18)
        await _until(lambda: _deposit(kv, gateway, 4 * 10**18), 5, "the topped-up deposit")
        lp.send(lp.TicketBroker.functions.fundReserve(), sender, value=10**18)
        lp.send(lp.TicketBroker.functions.unlock(), sender)
        stored = await _until(lambda: _sender_where(kv, gateway, lambda v: v.withdraw_round > 0), 5, "the unlock")
        assert (stored.reserve, stored.withdraw_round) == (3 * 10**18, round_now + 2)
        assert lp.round() == round_now and service.metric("baton_chain_sender_event_refreshes_total") >= 2
        # ... and each new round re-reads them too.
        lp.next_round()
        assert (await _until(lambda: _sender_where(kv, gateway, lambda v: v.round == round_now + 1), 30,
                             "the next round's read")).deposit == 4 * 10**18

        # Nonce cleanup follows the head, margin blocks behind.
        nonces = await js.key_value(NONCES_BUCKET)
        lp.mine(7)
        target = lp.block() - 5
        marker = await _until(lambda: _marker_at(nonces, target), 30, "the cleanup mark")
        # never closer to the head than the margin (the service's own reward may have mined a block meanwhile)
        assert target <= marker["cleanup_block"] <= lp.block() - 5
        metrics = service.metrics()
        assert "livepeer_suggested_gas_price" in metrics and "baton_chain_eth_balance_wei" in metrics
        # -reward=false: active through two new rounds, and never rewarded
        assert lp.BondingManager.functions.isActiveTranscoder(me).call()
        assert lp.reward_events(me) == [] and '"reward": "off"' in service.output()
    finally:
        await nc.close()


async def _bucket(js, name):
    try:
        return await js.key_value(name)
    except Exception:
        return None


async def _head_at(kv, block: int) -> bool:
    value = await _value(kv, "head")
    return value is not None and value.l1_block == block


async def _deposit(kv, gateway, want: int) -> bool:
    value = await _value(kv, "sender.0x" + gateway.address.hex())
    return value is not None and value.deposit == want


async def _sender_where(kv, gateway, predicate):
    value = await _value(kv, "sender.0x" + gateway.address.hex())
    return value if value is not None and predicate(value) else None


async def _marker_at(kv, block: int):
    try:
        marker = msgspec.json.decode((await kv.get(STATE_KEY)).value)
    except KeyNotFoundError:
        return None
    return marker if marker.get("cleanup_block", 0) >= block else None


def _lease_state(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()["checks"]["sender_lease"]["detail"]
    except Exception:
        return ""


async def test_one_instance_sends_the_other_stands_by_and_takes_over(livepeer, bus, chain_process,
                                                                    orchestrator) -> None:
    lp = livepeer
    me = orchestrator.address
    lp.register_orchestrator(me, STAKE)
    registered = lp.w3.eth.get_transaction_count(me)  # approve, bond, transcoder
    first = chain_process("chain-a", BATON_CHAIN_INITIALIZE_ROUND="true")
    second = chain_process("chain-b", BATON_CHAIN_INITIALIZE_ROUND="true")
    first.start()
    wait_for(lambda: _lease_state(first.port) == "held", 60, "the first instance holding the lease")
    second.start()
    wait_for(lambda: _lease_state(second.port) == "standby", 60, "the second instance standing by")
    round_ = lp.next_round(initialize=False)
    wait_for(lambda: lp.BondingManager.functions.getTranscoder(me).call()[0] == round_, 60, "reward")
    first.kill9()  # its lease lapses after the TTL; the standby takes over
    started = time.monotonic()
    wait_for(lambda: _lease_state(second.port) == "held", CHAIN_LEASE_TTL + 20, "the takeover")
    assert time.monotonic() - started <= CHAIN_LEASE_TTL + 5
    round_ = lp.next_round(initialize=False)
    wait_for(lambda: lp.BondingManager.functions.getTranscoder(me).call()[0] == round_, 60, "reward by the second")
    nc = await nats.connect(bus.url)
    try:
        lease = await (await nc.jetstream().key_value(CHAIN_LEASE_BUCKET)).get("sender")
        assert decode(lease.value, ChainLease).holder.startswith("chain-b@")
    finally:
        await nc.close()
    rewards = lp.reward_events(me)
    assert [r["round"] for r in rewards] == [round_ - 1, round_]
    assert lp.w3.eth.get_transaction_count(me) - registered == 4  # two initializeRound, two rewards: nothing twice


async def test_eth_usd_from_a_chainlink_aggregator_as_pricing_reads_it(livepeer, bus, chain_process, orchestrator,
                                                                      stand_ins) -> None:
    """A stand-in AggregatorV3Interface on anvil: the rate, its decimals and the feed's own update time reach
    pricing's adapter; a feed that reverts leaves the last good value, counted and logged."""
    lp = livepeer
    abi, bytecode = stand_ins["AggregatorStandIn"]
    factory = lp.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = lp.send(factory.constructor(8, "ETH / USD"))
    feed = lp.w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    updated = int(time.time()) - 1800  # half an hour old: pricing judges staleness by this, not by our read
    lp.send(feed.functions.setAnswer(3000_12345678, updated))
    service = chain_process(BATON_CHAIN_PRICE_FEED_ADDR=feed.address, BATON_CHAIN_PRICE_FEED_INTERVAL="0.3")
    service.start()
    nc = await nats.connect(bus.url)
    rates: list[Rate] = []

    async def on_rate(rate: Rate) -> None:
        rates.append(rate)

    watch = asyncio.create_task(ChainRate(Bus(nc, "pricing-test")).run(on_rate))
    try:
        await _until(lambda: _true(rates), 60, "pricing's first rate")
        rate = rates[-1]
        assert rate.value == Fraction(3000_12345678, 10**8) and rate.eth_is_base
        assert rate.updated_at == updated and rate.feed == feed.address.lower()

        # A new round of the feed arrives within a read interval.
        lp.send(feed.functions.setAnswer(2999_50000000, updated + 600))
        await _until(lambda: _true(rates[-1].updated_at == updated + 600), 10, "the feed's next answer")
        assert rates[-1].value == Fraction(299950000000, 10**8)

        # The feed reverts: eth-usd keeps the last good value, the errors are counted and logged.
        lp.send(feed.functions.setBroken(True))
        wait_for(lambda: service.metric("baton_chain_price_feed_errors_total") >= 2, 15, "the feed errors counted")
        kv = await nc.jetstream().key_value(CHAIN_BUCKET)
        kept = await _value(kv, "eth-usd")
        assert (kept.answer, kept.decimals, kept.updated_at) == (2999_50000000, 8, updated + 600)
        assert "eth-usd keeps its last good value" in service.output()
        assert service.metric("baton_chain_eth_usd") == 2999.5
        # ... and it comes back when the feed does.
        lp.send(feed.functions.setBroken(False))
        lp.send(feed.functions.setAnswer(3100_00000000, updated + 1200))
        await _until(lambda: _true(rates[-1].updated_at == updated + 1200), 10, "the feed's recovery")
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await nc.close()


async def _true(value) -> bool:
    return bool(value)
