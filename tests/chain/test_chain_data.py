"""Chain data in ``baton-chain`` from the real protocol, the sender cold path, nonce cleanup, and the lease."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import nats
from eth_utils import to_checksum_address
from nats.js.errors import KeyNotFoundError

from baton_common.bus import BATON_CODE_HEADER
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
    service = chain_process(BATON_CHAIN_NONCE_CLEANUP_MARGIN="5")
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

        # Funds move on chain: the next round's refresh shows them.
        lp.send(lp.TicketBroker.functions.fundDeposit(), to_checksum_address(gateway.address), value=10**18)
        lp.next_round()
        await _until(lambda: _deposit(kv, gateway, 4 * 10**18), 30, "the new deposit")

        # Nonce cleanup follows the head, margin blocks behind.
        nonces = await js.key_value(NONCES_BUCKET)
        lp.mine(7)
        target = lp.block() - 5
        marker = await _until(lambda: _marker_at(nonces, target), 30, "the cleanup mark")
        # never closer to the head than the margin (the service's own reward may have mined a block meanwhile)
        assert target <= marker["cleanup_block"] <= lp.block() - 5
        metrics = service.metrics()
        assert "livepeer_suggested_gas_price" in metrics and "baton_chain_eth_balance_wei" in metrics
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
        assert decode(lease.value, ChainLease).holder == "chain-b"
    finally:
        await nc.close()
    rewards = lp.reward_events(me)
    assert [r["round"] for r in rewards] == [round_ - 1, round_]
    assert lp.w3.eth.get_transaction_count(me) - registered == 4  # two initializeRound, two rewards: nothing twice
