"""ProcessPayment end to end: check, persist the winners, spend the nonces, then credit."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from baton_common.pm import (
    BalanceEntry,
    Balances,
    InvalidRecipientRand,
    InvalidTicketSignature,
    MemoryBalanceStore,
    MemoryNonceStore,
    MemoryWinningTickets,
    NonceAlreadySeen,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    RecipientInactive,
    Scope,
    SenderInfoUnavailable,
    SignedTicket,
    TicketParamsIssuer,
    WinnerPending,
    WinnerRedeemed,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2

from .conftest import PRICE, SECRET, TICKET_EV
from .pm_fakes import FakeChain
from .pm_gateway import Gateway


def decoded(payment: lp_rpc_pb2.Payment):
    return decode_payment(payment.SerializeToString())


class BalanceWatchingWinners:
    """Records the sender's balance at the moment each winner is stored."""

    def __init__(self, balances: Balances, sender: bytes) -> None:
        self.balances, self.sender = balances, sender
        self.seen: list[Fraction | None] = []
        self.hashes: set[bytes] = set()

    async def store(self, ticket: SignedTicket) -> bool:
        self.seen.append(await self.balances.balance(self.sender, "m"))
        new = ticket.ticket_hash not in self.hashes
        self.hashes.add(ticket.ticket_hash)
        return new


async def test_winners_are_stored_before_any_credit(orch, chain, validator, nonces, gateway) -> None:
    chain.gas = 1
    always = TicketParamsIssuer(
        ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV), SECRET, chain, nonces
    )
    balances = Balances(MemoryBalanceStore())
    winners = BalanceWatchingWinners(balances, gateway.address)
    processor = PaymentProcessor(validator, balances, winners)
    params = ticket_params_to_pb(await always.quote(gateway.address, PRICE))
    validation = await processor.process(decoded(gateway.pay(params, 2)), "m", Scope.base())
    assert winners.seen == [None, None]  # nothing was credited when the winners were stored
    assert await balances.balance(gateway.address, "m") == validation.ev == 2 * TICKET_EV


async def test_credit_up_to_the_first_error_then_raise(processor, balances, issuer, gateway) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 3)
    payment.ticket_sender_params[2].sig = b"\x00" * 65
    with pytest.raises(InvalidTicketSignature) as refused:
        await processor.process(decoded(payment), "m", Scope.base())
    validation = refused.value.validation
    assert validation.credited == 2
    assert await balances.balance(gateway.address, "m") == validation.ev > 0
    assert await balances.fixed_price(gateway.address, "m") == PRICE


async def test_a_fatal_error_changes_nothing_not_even_the_price(processor, balances, issuer, gateway) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    with pytest.raises(InvalidRecipientRand):
        await processor.process(decoded(gateway.pay(params, 2, price=(5, 1))), "m", Scope.base())  # a price never quoted
    assert await balances.balance(gateway.address, "m") is None
    assert await balances.fixed_price(gateway.address, "m") is None
    # The session price is then fixed by the first payment that proves its price.
    await processor.process(decoded(gateway.pay(params, 1)), "m", Scope.base())
    assert await balances.fixed_price(gateway.address, "m") == PRICE


async def test_a_payment_without_tickets_fixes_no_price(processor, balances, issuer, gateway) -> None:
    cheap = ticket_params_to_pb(await issuer.quote(gateway.address, Fraction(1, 1000)))
    validation = await processor.process(decoded(gateway.pay(cheap, 0, price=(1, 1000))), "m", Scope.base())
    assert validation.credited == 0 and validation.error is None
    assert await balances.fixed_price(gateway.address, "m") is None
    fair = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    await processor.process(decoded(gateway.pay(fair, 1)), "m", Scope.base())
    assert await balances.fixed_price(gateway.address, "m") == PRICE


async def test_payment_level_errors_change_nothing(processor, balances, issuer, gateway, chain) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    chain.active.clear()
    with pytest.raises(RecipientInactive):
        await processor.process(decoded(gateway.pay(params, 2)), "m", Scope.base())
    assert await balances.balance(gateway.address, "m") is None
    assert await balances.fixed_price(gateway.address, "m") is None


async def test_the_first_payment_fixes_the_session_price(processor, balances, issuer, gateway) -> None:
    first = ticket_params_to_pb(await issuer.quote(gateway.address, Fraction(2)))
    await processor.process(decoded(gateway.pay(first, 1, price=(2, 1))), "m", Scope.base())
    later = ticket_params_to_pb(await issuer.quote(gateway.address, Fraction(3)))
    await processor.process(decoded(gateway.pay(later, 1, price=(3, 1))), "m", Scope.base())
    assert await balances.fixed_price(gateway.address, "m") == 2
    # Without ticket params nothing proves a price: go-livepeer fixes 0 here, Baton nothing.
    await processor.process(decoded(lp_rpc_pb2.Payment(sender=gateway.address)), "free", Scope.base())
    assert await balances.fixed_price(gateway.address, "free") is None


async def test_a_replayed_payment_is_credited_once(processor, balances, issuer, gateway) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 4)
    credited = (await processor.process(decoded(payment), "m", Scope.base())).ev
    # The exact payment again: its credit reached the balance and left the journal, so it is a replay.
    with pytest.raises(NonceAlreadySeen):
        await processor.process(decoded(payment), "m", Scope.base())
    # Any other batch of the same tickets is a replay.
    with pytest.raises(NonceAlreadySeen):
        await processor.process(decoded(gateway.pay(params, nonces=[4, 3, 2, 1])), "m", Scope.base())
    with pytest.raises(NonceAlreadySeen):
        await processor.process(decoded(gateway.pay(params, nonces=[2])), "m", Scope.base())
    assert await balances.balance(gateway.address, "m") == credited


async def test_sessions_of_one_sender_are_credited_apart(issuer, gateway, chain, orch, nonces) -> None:
    balances = Balances(MemoryBalanceStore())
    processor = PaymentProcessor(PaymentValidator(orch, SECRET, chain, nonces), balances, _Sink())
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    one = await processor.process(decoded(gateway.pay(params, 1)), "session-1", Scope.base())
    two = await processor.process(decoded(gateway.pay(params, 2)), "session-2", Scope.base())
    assert await balances.balance(gateway.address, "session-1") == one.ev
    assert await balances.balance(gateway.address, "session-2") == two.ev == 2 * one.ev


class _Sink(MemoryWinningTickets):
    """Keeps nothing."""

    async def store(self, ticket: SignedTicket) -> bool:
        return True


# --- write ordering: nothing is spent before its winners are stored -------------------


class Down(Exception):
    """A store or the chain service failing to answer."""


class FlakyWinners(MemoryWinningTickets):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def store(self, ticket: SignedTicket) -> bool:
        if self.down:
            raise Down("winner store unavailable")
        return await super().store(ticket)


class FlakyNonces(MemoryNonceStore):
    """Nonces that may fail, and that check the winners of what they spend are stored already."""

    def __init__(self, winners: MemoryWinningTickets) -> None:
        super().__init__()
        self.winners = winners
        self.down = False

    async def update(self, key: str, expiration_block: int, generation: bytes, change):
        if self.down:
            raise Down("nonce store unavailable")
        stored = {
            t.ticket.sender_nonce for t in await self.winners.pending() if t.ticket.recipient_rand_hash.hex() == key
        } | {r.ticket.ticket.sender_nonce for r in self.winners._records.values() if not isinstance(r, WinnerPending)}

        def checked(record):
            before = set(record.nonces)
            new = change(record)
            if new is not None:
                assert set(new.nonces) - before <= stored, "nonces spent before their winning tickets were stored"
            return new

        return await super().update(key, expiration_block, generation, checked)


class FlakyBalanceStore(MemoryBalanceStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def update(self, key, change) -> BalanceEntry:
        if self.down:
            raise Down("balance store unavailable")
        return await super().update(key, change)


class Flaky:
    """A processor over flaky stores, with params where every ticket wins."""

    def __init__(self, orch: bytes, chain: FakeChain) -> None:
        chain.gas = 1
        self.chain = chain
        self.winners = FlakyWinners()
        self.nonces = FlakyNonces(self.winners)
        self.issuer = TicketParamsIssuer(
            ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV), SECRET, chain, self.nonces
        )
        self.store = FlakyBalanceStore()
        self.balances = Balances(self.store)
        self.processor = PaymentProcessor(PaymentValidator(orch, SECRET, chain, self.nonces), self.balances, self.winners)

    def heal(self) -> None:
        self.chain.errors.clear()
        self.winners.down = self.nonces.down = self.store.down = False


def _break(flaky: Flaky, step: str) -> None:
    if step in ("winners", "nonces", "balances"):
        getattr(flaky, {"balances": "store"}.get(step, step)).down = True
    else:
        flaky.chain.errors[step] = Down(f"chain service did not answer {step}")


@pytest.mark.parametrize(
    "step", ["last_initialized_round", "is_active_orchestrator", "sender_info", "last_seen_l1_block", "winners", "nonces"]
)
async def test_a_failure_before_the_nonce_commit_spends_nothing_and_the_retry_is_credited(
    step: str, orch, chain: FakeChain
) -> None:
    flaky = Flaky(orch, chain)
    gateway = Gateway.random()
    payment = decoded(gateway.pay(ticket_params_to_pb(await flaky.issuer.quote(gateway.address, PRICE)), 3))
    _break(flaky, step)
    with pytest.raises(SenderInfoUnavailable if step == "sender_info" else Down):
        await flaky.processor.process(payment, "m", Scope.base())
    assert flaky.nonces.snapshot() == {}  # no ticket spent
    assert await flaky.balances.balance(gateway.address, "m") is None
    # Winners stored before the failure stay stored (only the nonce store fails after them).
    assert len(await flaky.winners.pending()) == (3 if step == "nonces" else 0)

    flaky.heal()
    retried = await flaky.processor.process(payment, "m", Scope.base())
    assert retried.credited == 3 and retried.error is None
    assert await flaky.balances.balance(gateway.address, "m") == retried.ev == 3 * TICKET_EV
    assert len(await flaky.winners.pending()) == 3


async def test_winners_are_stored_before_their_nonces_are_spent_replays_included(orch, chain: FakeChain) -> None:
    flaky = Flaky(orch, chain)  # FlakyNonces asserts the order on every commit
    gateway = Gateway.random()
    params = ticket_params_to_pb(await flaky.issuer.quote(gateway.address, PRICE))
    first = await flaky.processor.process(decoded(gateway.pay(params, 2)), "m", Scope.base())
    assert len(first.winners) == 2 and len(await flaky.winners.pending()) == 2
    for ticket in await flaky.winners.pending():  # the redeemer settled them
        await flaky.winners.settle(ticket.ticket_hash, WinnerRedeemed(ticket, tx_hash=b"\x01" * 32))
    with pytest.raises(NonceAlreadySeen) as replay:
        await flaky.processor.process(decoded(gateway.pay(params, nonces=[2, 1])), "m", Scope.base())
    # The replay re-offers its winners; their settled records stand, and nothing is pending again.
    assert len(replay.value.validation.winners) == 2 and await flaky.winners.pending() == []
    for ticket in first.winners:
        assert isinstance(await flaky.winners.record(ticket.ticket_hash), WinnerRedeemed)


async def test_a_credit_that_failed_after_the_nonce_commit_is_completed_by_the_retry_once(
    orch, chain: FakeChain
) -> None:
    """The old window (nonces spent, credit lost) is closed: the spend journaled the credit it owes."""
    flaky = Flaky(orch, chain)
    gateway = Gateway.random()
    payment = decoded(gateway.pay(ticket_params_to_pb(await flaky.issuer.quote(gateway.address, PRICE)), 2))
    _break(flaky, "balances")
    with pytest.raises(Down):
        await flaky.processor.process(payment, "m", Scope.base())
    assert len(await flaky.winners.pending()) == 2
    assert await flaky.balances.balance(gateway.address, "m") is None
    flaky.heal()
    retried = await flaky.processor.process(payment, "m", Scope.base())
    assert retried.credited == 2 and retried.error is None
    assert await flaky.balances.balance(gateway.address, "m") == 2 * TICKET_EV
    with pytest.raises(NonceAlreadySeen):  # and again: settled now, so a replay
        await flaky.processor.process(payment, "m", Scope.base())
    assert await flaky.balances.balance(gateway.address, "m") == 2 * TICKET_EV
    # The same tickets offered for another session are a replay; the journaled credit is not moved.
    with pytest.raises(NonceAlreadySeen):
        await flaky.processor.process(payment, "other", Scope.base())
    assert await flaky.balances.balance(gateway.address, "other") is None


async def test_an_interrupted_credit_is_completed_by_the_next_payment_under_the_same_params(
    orch, chain: FakeChain
) -> None:
    """go-livepeer never resends the same bytes: it retries with a new batch. That completes it."""
    flaky = Flaky(orch, chain)
    gateway = Gateway.random()
    params = ticket_params_to_pb(await flaky.issuer.quote(gateway.address, PRICE))
    _break(flaky, "balances")
    with pytest.raises(Down):
        await flaky.processor.process(decoded(gateway.pay(params, 3)), "m", Scope.base())
    flaky.heal()
    following = await flaky.processor.process(decoded(gateway.pay(params, 2)), "m", Scope.base())
    assert following.credited == 2 and not following.retried
    assert await flaky.balances.balance(gateway.address, "m") == 5 * TICKET_EV  # both payments, once each
    (record,) = flaky.nonces.snapshot().values()
    assert record.credits == {}  # nothing owed any more
    await flaky.processor.process(decoded(gateway.pay(params, 1)), "m", Scope.base())
    assert await flaky.balances.balance(gateway.address, "m") == 6 * TICKET_EV


async def test_an_interrupted_credit_is_completed_by_cleanup_before_the_record_goes(orch, chain: FakeChain) -> None:
    flaky = Flaky(orch, chain)
    gateway = Gateway.random()
    params = ticket_params_to_pb(await flaky.issuer.quote(gateway.address, PRICE))
    payment = decoded(gateway.pay(params, 2))
    _break(flaky, "balances")
    with pytest.raises(Down):
        await flaky.processor.process(payment, "m", Scope.base())
    flaky.heal()

    async def complete(credits) -> None:
        for credit in credits:
            await flaky.balances.apply(credit)

    expiration = int.from_bytes(params.expiration_block, "big")
    flaky.store.down = True  # the first cleanup cannot complete it: the record stays, and the mark below it
    assert await flaky.nonces.cleanup(expiration, complete) == 0
    flaky.store.down = False
    assert await flaky.nonces.cleanup(expiration, complete) == 1
    assert await flaky.balances.balance(gateway.address, "m") == 2 * TICKET_EV
    assert flaky.nonces.snapshot() == {}


async def test_a_cancelled_request_still_settles_what_it_spent(orch, chain: FakeChain) -> None:
    flaky = Flaky(orch, chain)
    gateway = Gateway.random()
    params = ticket_params_to_pb(await flaky.issuer.quote(gateway.address, PRICE))
    started = asyncio.Event()
    release = asyncio.Event()
    apply = flaky.balances.apply

    async def slow_apply(credit):
        started.set()
        await release.wait()
        return await apply(credit)

    flaky.balances.apply = slow_apply  # type: ignore[method-assign]
    task = asyncio.create_task(flaky.processor.process(decoded(gateway.pay(params, 2)), "m", Scope.base()))
    await started.wait()
    task.cancel()  # the gateway went away after its nonces were spent
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if flaky.nonces.snapshot()[params.recipient_rand_hash.hex()].credits == {}:
            break
        await asyncio.sleep(0.01)
    assert await flaky.balances.balance(gateway.address, "m") == 2 * TICKET_EV


async def test_the_journal_keeps_only_credits_still_owed(processor, balances, issuer, gateway, nonces) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payments = [gateway.pay(params, 2) for _ in range(5)]
    for payment in payments:
        await processor.process(decoded(payment), "m", Scope.base())
    (record,) = nonces.snapshot().values()
    assert len(record.nonces) == 10 and record.credits == {}  # every credit reached its balance
    total = await balances.balance(gateway.address, "m")
    # An exact retry of a payment already credited is a replay: refused, and not credited again.
    with pytest.raises(NonceAlreadySeen):
        await processor.process(decoded(payments[0]), "m", Scope.base())
    assert await balances.balance(gateway.address, "m") == total
