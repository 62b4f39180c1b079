"""ProcessPayment end to end: the session price, winners persisted before credit, then credit."""

from __future__ import annotations

from fractions import Fraction

import pytest

from baton_common.pm import (
    Balances,
    InvalidRecipientRand,
    InvalidTicketSignature,
    MemoryBalanceStore,
    NonceAlreadySeen,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    RecipientInactive,
    SignedTicket,
    TicketParamsIssuer,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2

from .conftest import PRICE, SECRET, TICKET_EV


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


async def test_winners_are_stored_before_any_credit(orch, chain, validator, gateway) -> None:
    chain.gas = 1
    always = TicketParamsIssuer(
        ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV), SECRET, chain
    )
    balances = Balances(MemoryBalanceStore())
    winners = BalanceWatchingWinners(balances, gateway.address)
    processor = PaymentProcessor(validator, balances, winners)
    params = ticket_params_to_pb(await always.quote(gateway.address, PRICE))
    validation = await processor.process(decoded(gateway.pay(params, 2)), "m")
    assert winners.seen == [None, None]  # nothing was credited when the winners were stored
    assert await balances.balance(gateway.address, "m") == validation.ev == 2 * TICKET_EV


async def test_credit_up_to_the_first_error_then_raise(processor, balances, issuer, gateway) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 3)
    payment.ticket_sender_params[2].sig = b"\x00" * 65
    with pytest.raises(InvalidTicketSignature) as refused:
        await processor.process(decoded(payment), "m")
    validation = refused.value.validation
    assert validation.credited == 2
    assert await balances.balance(gateway.address, "m") == validation.ev > 0
    assert await balances.fixed_price(gateway.address, "m") == PRICE


async def test_fatal_error_credits_nothing_but_the_price_is_fixed(processor, balances, issuer, gateway) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    with pytest.raises(InvalidRecipientRand):
        await processor.process(decoded(gateway.pay(params, 2, price=(5, 1))), "m")
    assert await balances.balance(gateway.address, "m") == 0
    assert await balances.fixed_price(gateway.address, "m") == 5


async def test_payment_level_errors_change_nothing(processor, balances, issuer, gateway, chain) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    chain.active.clear()
    with pytest.raises(RecipientInactive):
        await processor.process(decoded(gateway.pay(params, 2)), "m")
    assert await balances.balance(gateway.address, "m") is None
    assert await balances.fixed_price(gateway.address, "m") is None


async def test_the_first_payment_fixes_the_session_price(processor, balances, issuer, gateway) -> None:
    first = ticket_params_to_pb(await issuer.quote(gateway.address, Fraction(2)))
    await processor.process(decoded(gateway.pay(first, 1, price=(2, 1))), "m")
    later = ticket_params_to_pb(await issuer.quote(gateway.address, Fraction(3)))
    await processor.process(decoded(gateway.pay(later, 1, price=(3, 1))), "m")
    assert await balances.fixed_price(gateway.address, "m") == 2
    await processor.process(decoded(lp_rpc_pb2.Payment(sender=gateway.address)), "free")
    assert await balances.fixed_price(gateway.address, "free") == 0


async def test_a_replayed_payment_is_credited_once(processor, balances, issuer, gateway) -> None:
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 4)
    credited = (await processor.process(decoded(payment), "m")).ev
    with pytest.raises(NonceAlreadySeen):
        await processor.process(decoded(payment), "m")
    assert await balances.balance(gateway.address, "m") == credited


async def test_sessions_of_one_sender_are_credited_apart(issuer, gateway, chain, orch, nonces) -> None:
    balances = Balances(MemoryBalanceStore())
    processor = PaymentProcessor(PaymentValidator(orch, SECRET, chain, nonces), balances, _Sink())
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    one = await processor.process(decoded(gateway.pay(params, 1)), "session-1")
    two = await processor.process(decoded(gateway.pay(params, 2)), "session-2")
    assert await balances.balance(gateway.address, "session-1") == one.ev
    assert await balances.balance(gateway.address, "session-2") == two.ev == 2 * one.ev


class _Sink:
    async def store(self, ticket: SignedTicket) -> bool:
        return True
