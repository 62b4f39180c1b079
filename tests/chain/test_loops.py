"""The reward and redemption loops against fakes of Ethereum (ports of the loops): failures that must not
forfeit a round or starve other tickets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from prometheus_client import REGISTRY
from web3.exceptions import Web3RPCError

import baton_chain.reward as reward_mod
from baton_chain.bus import ChainPublisher
from baton_chain.errors import GasPriceAboveCap, InsufficientFunds, RpcUnavailable
from baton_chain.journal import TxJournal
from baton_chain.lease import SenderLease
from baton_chain.redeemer import LOG_CHUNK, Redeemer, run_redeemer
from baton_chain.reward import RewardService
from baton_common.pm.winners import WinnerRedeemed
from baton_common.pm_nats import KvWinningTickets
from baton_common.schemas import decode, encode
from baton_common.schemas.chain import HEAD_KEY, L1Head

from .fakes import ME as ME_BYTES
from .fakes import FakeEth, FakeSender, Lease, Winners, ticket

ME = "0x" + "11" * 20


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RewardEth:
    addresses = {"BondingManager": "0x" + "44" * 20, "RoundsManager": "0x" + "55" * 20}

    async def block(self):
        class B:
            number = 100
        return B()

    async def call(self, fn, *args, **kw):
        return {
            "RoundsManager.currentRound": 7,
            "RoundsManager.currentRoundInitialized": True,
            "RoundsManager.lastInitializedRound": 7,
            "BondingManager.getTranscoder": (6, 0, 0, 6, 1, 2**255, 0, 0, 0, 0),
            "BondingManager.isActiveTranscoder": True,
        }[fn]


class SpikySender:
    address = ME
    tx_timeout = 300.0

    def __init__(self) -> None:
        self.lease = Lease()
        self.calls: list[float] = []
        self.gas_spike = True
        self.succeeded: float | None = None

    async def wait_in_flight(self, timeout):
        return True

    async def send(self, *a, **kw):
        if self.succeeded is not None:
            raise AssertionError("reward called again after it succeeded")
        self.calls.append(reward_mod.time.monotonic())
        if self.gas_spike:
            raise GasPriceAboveCap("base fee above -maxGasPrice")
        self.succeeded = self.calls[-1]
        return {"transactionHash": b"\x01" * 32}


async def test_reward_keeps_trying_through_a_long_fee_spike_and_alerts(monkeypatch, caplog) -> None:
    now = [0.0]
    monkeypatch.setattr(reward_mod.time, "monotonic", lambda: now[0])
    sender = SpikySender()
    svc = RewardService(RewardEth(), sender, reward=True, initialize_round=False, attempts=5, backoff=5.0)

    async def hints(transcoder):
        return ("0x" + "00" * 20, "0x" + "00" * 20)
    svc.hints = hints
    errors_before = metric("livepeer_reward_call_errors")
    caplog.set_level(logging.ERROR, "baton.chain.reward")
    for _ in range(12 * 60):  # an hour of 5 s polls in the same round; fees above the cap for 40 minutes
        await svc.check()
        now[0] += 5.0
        if now[0] == 600:
            assert metric("baton_chain_reward_failed") == 1  # the operator sees it while it is still failing
            assert any("reward failing" in r.getMessage() for r in caplog.records)
        if now[0] > 40 * 60:
            sender.gas_spike = False
        if sender.succeeded is not None:
            break
    assert sender.succeeded is not None, f"{len(sender.calls)} tries, none after the spike"
    assert 40 * 60 < sender.succeeded <= 40 * 60 + 305  # tried again within the backoff cap after fees came down
    gaps = [b - a for a, b in zip(sender.calls, sender.calls[1:], strict=False)]
    assert max(gaps) <= 305
    assert metric("livepeer_reward_call_errors") - errors_before == len(sender.calls) - 1
    assert metric("baton_chain_reward_failed") == 0  # cleared by the success


@pytest.mark.parametrize("failure", [
    Web3RPCError("eth_getLogs is limited to a 10,000 block range"),  # a JSON-RPC refusal
    RpcUnavailable("no Ethereum node answered (2 tried): ReadTimeout"),  # the search timing out
], ids=["rpc-refusal", "timeout"])
async def test_one_tickets_failing_event_search_does_not_starve_the_others(failure, caplog) -> None:
    used, good = ticket(1), ticket(2)
    eth = FakeEth(used={used.ticket_hash})
    eth.fail["logs"] = failure
    sender = FakeSender()
    winners = Winners([used, good])
    redeemer = Redeemer(eth, sender, winners, ME_BYTES, redeem_gas=350_000)
    errors = metric("livepeer_ticket_redemption_errors", sender="0x" + "22" * 20)
    task = asyncio.create_task(run_redeemer(redeemer, 0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    assert len(sender.sent) == 1  # the good ticket behind it is redeemed
    assert isinstance(winners.settled[good.ticket_hash], WinnerRedeemed)
    assert used.ticket_hash not in winners.settled  # still pending, tried again on a later pass
    assert metric("livepeer_ticket_redemption_errors", sender="0x" + "22" * 20) > errors
    assert any(getattr(r, "ticket", None) == "0x" + used.ticket_hash.hex() for r in caplog.records)


async def test_our_redemption_found_across_a_rounds_worth_of_l2_blocks() -> None:
    """Arbitrum: rounds count L1 blocks (5760 a round), the node's head is an L2 block (25 per L1 block here).
    Our own redemption from 1.2 rounds ago (a crash before its receipt) is found, in ranges a provider accepts."""
    t = ticket(1, creation_round=5)
    eth = FakeEth(used={t.ticket_hash}, current_round=6, head=6 * 5760 * 25 + 50_000, l1_per_l2=1 / 25)
    ours = b"\xbb" * 32
    eth.events.append((int(5.9 * 5760 * 25), t, ours))  # ~ 0.16 rounds after round 5 began
    winners = Winners([t])
    redeemer = Redeemer(eth, FakeSender(), winners, ME_BYTES, redeem_gas=350_000)
    await redeemer.pass_once()
    record = winners.settled[t.ticket_hash]
    assert isinstance(record, WinnerRedeemed) and record.tx_hash == ours  # not refused ticket_used
    assert all(isinstance(high, int) and high - low < LOG_CHUNK for low, high in eth.logs_calls)
    assert max(high for _, high in eth.logs_calls) == eth.head


async def test_an_undecodable_winner_record_is_skipped_and_counted(nc, prefix, caplog) -> None:
    """A newer negotiator's record tag (rolling upgrade) in baton-pm-winners: the other winners are still
    redeemed; the bad key is counted and logged, its value never."""
    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_winners")
    store = KvWinningTickets(kv)
    first, second = ticket(1), ticket(2)
    assert await store.store(first)
    await kv.put("ff" * 32, b'{"type":"winner.pending.v2","ticket":{"secret":"s3cr3t-value"}}')
    assert await store.store(second)
    sender = FakeSender()
    redeemer = Redeemer(FakeEth(), sender, store, ME_BYTES, redeem_gas=350_000)
    await redeemer.pass_once()
    assert len(sender.sent) == 2
    assert await store.pending() == []
    assert isinstance(await store.record(first.ticket_hash), WinnerRedeemed)
    assert isinstance(await store.record(second.ticket_hash), WinnerRedeemed)
    assert metric("baton_chain_bad_winner_records") == 1
    assert store.bad_records == {"ff" * 32: 2}
    bad = [r for r in caplog.records if getattr(r, "key", None) == "ff" * 32]
    assert len(bad) == 1  # logged once
    assert "s3cr3t" not in caplog.text


async def test_a_redemption_the_key_cannot_pay_gas_for_is_counted_with_its_cause(caplog) -> None:
    t = ticket(1)

    class Poor(FakeSender):
        async def send(self, *a, **kw):
            raise InsufficientFunds("the orchestrator's key cannot pay for gas: insufficient funds for gas")

    winners = Winners([t])
    redeemer = Redeemer(FakeEth(), Poor(), winners, ME_BYTES, redeem_gas=350_000)
    before = metric("livepeer_ticket_redemption_errors", sender="0x" + "22" * 20)
    await redeemer.pass_once()
    assert metric("livepeer_ticket_redemption_errors", sender="0x" + "22" * 20) == before + 1
    assert winners.settled == {}  # still pending
    assert redeemer.last_error[t.ticket_hash].startswith("insufficient_funds_for_gas")
    assert any("insufficient_funds_for_gas: the orchestrator's key cannot pay" in getattr(r, "error", "")
               for r in caplog.records)


async def test_a_lagging_instance_never_rewinds_the_published_head(nc, prefix, caplog) -> None:
    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_chain")
    await kv.put(HEAD_KEY, encode(L1Head(l1_block=1000, read_at=time.time(), block=1000)))
    publisher = ChainPublisher(FakeEth(head=990), kv, None, "0x" + "11" * 20)  # a node 10 blocks behind
    for _ in range(2):
        with contextlib.suppress(KeyError):  # the fake has nothing past the head (a publish would go on)
            await publisher.poll()
    assert decode((await kv.get(HEAD_KEY)).value, L1Head).l1_block == 1000
    assert [r.getMessage() for r in caplog.records].count(
        "the node is behind the chain data already published; publishing resumes when it catches up") == 1


async def test_replicas_sharing_an_instance_id_never_take_the_lease_from_each_other(nc, prefix) -> None:
    """compose's --scale chain=2: both containers have BATON_INSTANCE_ID=baton-chain, on different hosts."""
    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_lease", ttl=15)
    a = SenderLease(kv, "baton-chain", ME, 15, host="container-a")
    b = SenderLease(kv, "baton-chain", ME, 15, host="container-b")
    assert await a.try_once()
    for _ in range(3):
        assert not await b.try_once() and not b.held()
        assert await a.try_once() and a.held()
    restarted = SenderLease(kv, "baton-chain", ME, 15, host="container-a")  # container-a's process restarted
    assert await restarted.try_once()
    assert (await a.holder_now()) == restarted.holder != a.holder


async def test_the_journal_keeps_every_hash_when_two_writers_race(nc, prefix) -> None:
    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_txs")
    one, two = TxJournal(kv, ME), TxJournal(kv, ME)
    await asyncio.gather(*(j.record("redeem.ab", "redeemWinningTicket", 7, bytes([i]) * 32)
                           for i, j in enumerate([one, two] * 4)))
    assert sorted(await one.hashes("redeem.ab")) == sorted(bytes([i]) * 32 for i in range(8))


async def test_settled_winners_are_read_once_not_on_every_pass(nc, prefix) -> None:
    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_winners")
    gets: list[str] = []
    real_get = kv.get

    async def counting_get(key, *args, **kwargs):
        gets.append(key)
        return await real_get(key, *args, **kwargs)

    kv.get = counting_get
    store = KvWinningTickets(kv)
    tickets = [ticket(i) for i in range(5)]
    for t in tickets:
        await store.store(t)
    for t in tickets[:4]:
        await store.settle(t.ticket_hash, WinnerRedeemed(ticket=t, tx_hash=b"\1" * 32))
    assert await store.pending() == [tickets[4]]
    gets.clear()
    for _ in range(3):  # three more passes
        assert await store.pending() == [tickets[4]]
    assert gets == [tickets[4].ticket_hash.hex()] * 3  # only the pending one is read again


async def test_unfunded_senders_are_answered_but_neither_published_nor_tracked(nc, prefix) -> None:
    """Throwaway keys (free to make) looked up through the cold path must not grow the bucket or the senders
    re-read every round; a tracked sender whose funds are gone is dropped, and comes back once funded."""
    from baton_common.schemas.chain import SenderLookup, sender_key

    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_chain")
    eth = FakeEth(deposit=0, reserve=0)
    publisher = ChainPublisher(eth, kv, None, "0x" + "11" * 20)
    throwaway = ["0x" + f"{n:040x}" for n in range(1, 51)]
    for sender in throwaway:
        info = await publisher.lookup(SenderLookup(sender=sender))
        assert (info.deposit, info.reserve) == (0, 0)  # the negotiator gets its answer
    assert publisher.senders == set()
    with pytest.raises(Exception, match="no keys|NoKeys|nats: no keys found"):
        await kv.keys()
    eth.deposit = 10**18
    funded = await publisher.lookup(SenderLookup(sender=throwaway[0]))
    assert funded.deposit == 10**18 and publisher.senders == {throwaway[0]}
    assert (await kv.get(sender_key(throwaway[0]))).value
    eth.deposit = 0  # withdrawn: the next read drops it
    await publisher.sender_info(throwaway[0], 5, {"read_at": time.time(), "block": 1})
    assert publisher.senders == set()
    with pytest.raises(Exception, match="not found|KeyNotFound|KeyDeleted"):
        await kv.get(sender_key(throwaway[0]))


async def test_each_senders_pending_face_value_is_published_for_max_float(nc, prefix) -> None:
    """The redeemer's pending winners per sender reach the sender's entry at once (and every later read), so
    the negotiator's max float leaves room for winners still unredeemed (spec: reserveAlloc - pending)."""
    from baton_common.schemas.chain import SenderInfo, SenderLookup, sender_key

    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_chain")
    publisher = ChainPublisher(FakeEth(), kv, None, "0x" + "11" * 20)
    sender, other = "0x" + "ab" * 20, "0x" + "cd" * 20
    await publisher.lookup(SenderLookup(sender=sender))

    async def published() -> int:
        return decode((await kv.get(sender_key(sender))).value, SenderInfo).pending

    assert await published() == 0
    read_at = time.time()
    await publisher.set_pending({sender: 3 * 10**15, other: 10**15}, read_at)  # `other` is not published: skipped
    assert await published() == 3 * 10**15
    # When the pending set was read: the negotiator adds the winners it stored after it.
    assert decode((await kv.get(sender_key(sender))).value, SenderInfo).pending_at == read_at
    await publisher.sender_info(sender, 5, {"read_at": time.time(), "block": 1})  # a later read keeps it
    assert await published() == 3 * 10**15
    assert decode((await kv.get(sender_key(sender))).value, SenderInfo).pending_at == read_at
    # One redeemed and one as large new: the sum stays, the read time moves on (else counted twice).
    await publisher.set_pending({sender: 3 * 10**15}, read_at + 5)
    assert decode((await kv.get(sender_key(sender))).value, SenderInfo).pending_at == read_at + 5
    await publisher.set_pending({})  # redeemed
    assert await published() == 0


async def test_a_lagging_node_neither_overwrites_nor_drops_a_senders_published_funds(nc, prefix) -> None:
    from baton_common.schemas.chain import SenderInfo, SenderLookup, sender_key

    kv = await nc.jetstream().create_key_value(bucket=f"{prefix}_chain")
    sender = "0x" + "ab" * 20
    fresh = ChainPublisher(FakeEth(head=1000), kv, None, "0x" + "11" * 20)
    await kv.put(HEAD_KEY, encode(L1Head(l1_block=1000, read_at=time.time(), block=1000)))
    await fresh.lookup(SenderLookup(sender=sender))
    lagging = ChainPublisher(FakeEth(head=990, deposit=0, reserve=0), kv, None, "0x" + "11" * 20)
    lagging.track(sender)
    answer = await lagging.lookup(SenderLookup(sender=sender))  # a syncing standby reads it empty
    assert answer.deposit == 0
    published = decode((await kv.get(sender_key(sender))).value, SenderInfo)
    assert (published.deposit, published.block) == (10**18, 1000)  # still the funds the up-to-date node read
