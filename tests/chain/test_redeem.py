"""Redemption on Livepeer's real TicketBroker: each winner exactly once, after expiry, with reasons recorded.

Winning tickets are produced as the negotiator produces them: a gateway pays,
and the payments core (PaymentProcessor over the shared NATS KV stores)
validates the payment against the chain data the chain service published in
``baton-chain`` (the negotiator itself is built in parallel). The face value
equals the EV, so every ticket wins.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from eth_utils import to_checksum_address
from nats.js.errors import NoKeysError

from baton_common.pm import (
    Balances,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    SignedTicket,
    TicketParamsIssuer,
    WinnerPending,
    WinnerRedeemed,
    WinnerRefused,
    decode_payment,
    redeem_args,
    ticket_params_to_pb,
)
from baton_common.pm_nats import KvBalanceStore, KvNonceStore, KvWinningTickets
from baton_common.schemas.chain import CHAIN_TXS_BUCKET
from baton_common.schemas.payments import BALANCES, NONCES, WINNERS
from baton_common.streams import ensure_kv
from tests.common.pm.pm_gateway import Gateway

from .conftest import STAKE, wait_for
from .kv_view import KvChainView

SECRET = bytes(range(32))
FACE = 10**16
DEPOSIT = 10**18
RESERVE = 10**18


class Payments:
    """The negotiator's payment path over the real stores, against the published chain data."""

    def __init__(self, nc: nats.NATS, orch: bytes) -> None:
        self.nc = nc
        self.orch = orch
        self.view = KvChainView(nc, orch)

    async def open(self) -> Payments:
        js = self.nc.jetstream()
        self.nonces = KvNonceStore(await ensure_kv(js, NONCES))
        self.winners = KvWinningTickets(await ensure_kv(js, WINNERS))
        balances = Balances(KvBalanceStore(await ensure_kv(js, BALANCES)))
        validator = PaymentValidator(self.orch, SECRET, self.view, self.nonces)
        self.processor = PaymentProcessor(validator, balances, self.winners)
        self.issuer = TicketParamsIssuer(ParamsPolicy(recipient=self.orch, ticket_ev=FACE, max_face_value=FACE),
                                         SECRET, self.view, self.nonces)
        return self

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self.view.is_active_orchestrator(self.orch, 0) and await self.view.last_seen_l1_block():
                    return
            except (AssertionError, Exception):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("the chain service did not publish an active orchestrator")

    async def pay(self, gateway: Gateway, count: int) -> list[SignedTicket]:
        params = ticket_params_to_pb(await self.issuer.quote(gateway.address, 1))
        payment = gateway.pay(params, count)
        validation = await self.processor.process(decode_payment(payment.SerializeToString()), "m", Scope.base())
        assert len(validation.winners) == count
        return list(validation.winners)

    async def records(self, tickets: list[SignedTicket]) -> list:
        return [await self.winners.record(t.ticket_hash) for t in tickets]

    async def settled(self, tickets: list[SignedTicket], timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = await self.records(tickets)
            if not any(isinstance(r, WinnerPending) for r in records):
                return records
            await asyncio.sleep(0.1)
        raise AssertionError(f"still pending after {timeout}s: {await self.records(tickets)}")


@pytest.fixture
async def setup(livepeer, bus, orchestrator):
    lp = livepeer
    lp.register_orchestrator(orchestrator.address, STAKE)
    lp.next_round()
    nc = await nats.connect(bus.url)
    payments = await Payments(nc, bytes.fromhex(orchestrator.address[2:])).open()
    yield lp, payments
    await nc.close()


async def _keys(kv) -> list[str]:
    try:
        return await kv.keys()
    except NoKeysError:
        return []


def funded_gateway(lp) -> Gateway:
    gateway = Gateway.random()
    lp.fund_sender(to_checksum_address(gateway.address), DEPOSIT, RESERVE)
    return gateway


async def test_winners_redeem_once_after_expiry_across_kill_between_send_and_receipt(setup, chain_process,
                                                                                    orchestrator):
    lp, payments = setup
    me = orchestrator.address
    gateway = funded_gateway(lp)
    service = chain_process()
    service.start()
    await payments.ready()
    tickets = await payments.pay(gateway, 3)
    start = lp.block()

    lp.mine(30)  # params live: nothing is redeemed, the rands stay secret
    await asyncio.sleep(1.5)
    assert lp.redeemed_events(me, start) == []
    assert all(isinstance(r, WinnerPending) for r in await payments.records(tickets))

    # The first redemption is sent, then the service dies before it reads the receipt, and is back while that
    # transaction is still in the node's pool: it waits for it rather than sending the same ticket again.
    lp.w3.provider.make_request("evm_setAutomine", [False])
    lp.mine(15)  # params expired
    wait_for(lambda: lp.w3.eth.get_transaction_count(me, "pending") > lp.w3.eth.get_transaction_count(me), 60,
             "a redemption in the node's pool")
    service.kill9()
    first_nonce = lp.w3.eth.get_transaction_count(me)
    service.start()
    wait_for(lambda: service.output().count("protocol contracts resolved") == 2, 60, "the restart")
    for _ in range(60):  # its first pass, which finds that transaction in the pool
        if "redemption already in the node's pool" in service.output():
            break
        await asyncio.sleep(0.1)
    lp.mine(1)  # the one sent before the kill lands
    assert len(lp.redeemed_events(me, start)) == 1
    await asyncio.sleep(1)
    lp.mine(1)
    lp.w3.provider.make_request("evm_setAutomine", [True])

    records = await payments.settled(tickets)
    assert all(isinstance(r, WinnerRedeemed) for r in records), records
    events = lp.redeemed_events(me, start)
    assert len(events) == 3
    assert sorted(e["tx"] for e in events) == sorted("0x" + r.tx_hash.hex() for r in records)
    assert sorted(e["senderNonce"] for e in events) == sorted(t.ticket.sender_nonce for t in tickets)

    # The fee pool agrees with the face values redeemed; the deposit paid them.
    fees = lp.BondingManager.functions.pendingFees(me, lp.round()).call()
    assert fees == sum(t.ticket.face_value for t in tickets) == 3 * FACE
    (deposit, _), _ = lp.TicketBroker.functions.getSenderInfo(to_checksum_address(gateway.address)).call()
    assert deposit == DEPOSIT - 3 * FACE
    lp.mine(1)
    await asyncio.sleep(1)
    assert len(lp.redeemed_events(me, start)) == 3, "a ticket was redeemed twice"
    redemptions = [lp.w3.eth.get_transaction_receipt(h) for n in range(start, lp.block() + 1)
                   for h in lp.w3.eth.get_block(n)["transactions"]]
    redemptions = [r for r in redemptions if r["from"].lower() == me.lower()
                   and r["to"].lower() == lp.TicketBroker.address.lower()]
    assert [r["status"] for r in redemptions] == [1, 1, 1], "a redemption of ours reverted (gas lost)"
    assert lp.w3.eth.get_transaction_count(me) >= first_nonce + 2
    assert service.metric("livepeer_value_redeemed") == 3 * FACE
    # The one sent before the kill was settled from the journal (its receipt), not from an event search,
    # and the journal keeps nothing once every ticket is settled.
    assert service.output().count("redemption found in the transaction journal") == 1
    txs = await payments.nc.jetstream().key_value(CHAIN_TXS_BUCKET)
    assert await _keys(txs) == []


async def test_used_and_expired_tickets_end_with_their_reasons(setup, chain_process, orchestrator):
    lp, payments = setup
    me = orchestrator.address
    gateway = funded_gateway(lp)
    service = chain_process()
    service.start()
    await payments.ready()
    used, expired = await payments.pay(gateway, 2)

    # Someone else redeems the first one while its params are live (TicketBroker lets anyone send it).
    args = redeem_args(used)
    lp.send(lp.TicketBroker.functions.redeemWinningTicket(args[0], args[1], args[2]))
    # The service is down while the second one's redemption window closes.
    service.stop()
    lp.next_round()
    lp.next_round()
    service.start()

    used_record, expired_record = await payments.settled([used, expired])
    assert isinstance(used_record, WinnerRefused) and used_record.code == "ticket_used"
    assert "another" in used_record.reason or "not ours" in used_record.reason
    assert isinstance(expired_record, WinnerRefused) and expired_record.code == "ticket_expired"
    assert f"creationRound {expired.ticket.creation_round} + ticketValidityPeriod 2" in expired_record.reason
    assert len(lp.redeemed_events(me)) == 1  # only the other party's


async def test_underfunded_sender_ends_with_its_reason(setup, chain_process, orchestrator):
    """A sender with no deposit and a reserve that covers one winner: the first redemption drains it, the
    second is held back while it stays valid (the sender could fund again), then refused as underfunded."""
    lp, payments = setup
    gateway = Gateway.random()
    sender = to_checksum_address(gateway.address)
    lp.fund_sender(sender, 0, FACE)
    service = chain_process()
    service.start()
    await payments.ready()
    first, second = await payments.pay(gateway, 2)
    lp.mine(45)  # params expired
    (redeemed,) = await payments.settled([first])
    assert isinstance(redeemed, WinnerRedeemed)
    (deposit, _), (reserve, _) = lp.TicketBroker.functions.getSenderInfo(sender).call()
    assert (deposit, reserve) == (0, 0)
    lp.mine(2)
    await asyncio.sleep(1)
    assert isinstance(await payments.winners.record(second.ticket_hash), WinnerPending)
    lp.next_round()
    lp.next_round()
    (record,) = await payments.settled([second])
    assert isinstance(record, WinnerRefused) and record.code == "sender_underfunded", record
    assert "insufficient sender funds" in record.reason
    assert len(lp.redeemed_events(orchestrator.address)) == 1


async def test_a_ticket_paid_only_in_part_waits_a_round_and_counts_what_was_paid(setup, chain_process, orchestrator):
    """Reserve 1.5 F, no deposit: the first winner takes F of the round's allocation. The second, which the
    sender can pay only in part, waits while it stays redeemable past the next round, then is redeemed in its
    last round for what is there; livepeer_value_redeemed counts what TicketBroker transferred."""
    lp, payments = setup
    gateway = Gateway.random()
    sender = to_checksum_address(gateway.address)
    lp.fund_sender(sender, 0, FACE * 3 // 2)
    service = chain_process()
    service.start()
    await payments.ready()
    first, second = await payments.pay(gateway, 2)
    created = lp.round()
    lp.mine(45)  # params expired
    (redeemed,) = await payments.settled([first])
    assert isinstance(redeemed, WinnerRedeemed)
    lp.mine(3)
    await asyncio.sleep(1.5)
    assert isinstance(await payments.winners.record(second.ticket_hash), WinnerPending)  # waits, funds < F
    assert lp.round() == created
    lp.next_round()  # its last redeemable round
    (record,) = await payments.settled([second])
    assert isinstance(record, WinnerRedeemed), record
    assert (redeemed.amount, record.amount) == (FACE, FACE // 2)  # the records say what was paid
    fees = lp.BondingManager.functions.pendingFees(orchestrator.address, lp.round()).call()
    assert fees == FACE * 3 // 2  # F, then the F / 2 left
    assert service.metric("livepeer_value_redeemed") == FACE * 3 // 2
    assert "redeemed for less than its face value" in service.output()
