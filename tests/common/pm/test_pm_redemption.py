"""When a winning ticket is redeemed (spec 3.7), and the call it makes on chain."""

from __future__ import annotations

import pytest

from baton_common.pm import SenderInfo, SignedTicket, Ticket
from baton_common.pm.redemption import RedemptionDeferred, RedemptionGate, redeem_args

from .pm_evm import LivepeerBroker, redeemed_in
from .pm_fakes import L1_BLOCK, ROUND
from .pm_flows import process, winning_payment

SENDER = b"\x5e" * 20


def winner(face_value: int = 10**17, expiration_block: int = L1_BLOCK, creation_round: int = ROUND) -> SignedTicket:
    ticket = Ticket(b"\x01" * 20, SENDER, face_value, 2**255, 1, b"\x03" * 32, creation_round, b"\x04" * 32)
    return SignedTicket(ticket, b"\x05" * 65, 7, expiration_block)


@pytest.fixture
def gate(issuer, chain) -> RedemptionGate:
    chain.gas = 10**9
    chain.pool_size = 1
    chain.senders[SENDER] = SenderInfo(deposit=10**18, reserve_funds_remaining=10**18)
    return RedemptionGate(issuer, chain, redeem_gas=350_000)


async def test_never_while_the_params_are_live(gate, chain) -> None:
    with pytest.raises(RedemptionDeferred, match="not expired"):
        await gate.check(winner(expiration_block=L1_BLOCK + 1))
    await gate.check(winner(expiration_block=L1_BLOCK))


async def test_only_when_it_pays_for_itself(gate, chain) -> None:
    with pytest.raises(RedemptionDeferred, match="insufficient ticket face value"):
        await gate.check(winner(face_value=350_000 * 10**9))
    chain.senders[SENDER] = SenderInfo(deposit=0, reserve_funds_remaining=350_000 * 10**9)
    with pytest.raises(RedemptionDeferred, match="insufficient sender funds"):
        await gate.check(winner())
    chain.senders[SENDER] = SenderInfo(deposit=350_000 * 10**9, reserve_funds_remaining=1)
    await gate.check(winner())
    chain.pending[SENDER] = 2
    with pytest.raises(RedemptionDeferred, match="insufficient sender funds"):
        await gate.check(winner())


def test_selection_window_is_the_contracts() -> None:
    """TicketBroker redeems while creationRound + ticketValidityPeriod > currentRound."""
    assert RedemptionGate.in_window(winner(creation_round=ROUND - 1), ROUND, 2)
    assert not RedemptionGate.in_window(winner(creation_round=ROUND - 2), ROUND, 2)  # "ticket is expired"
    assert RedemptionGate.in_window(winner(creation_round=ROUND - 4), ROUND, 5)


async def test_the_validity_period_comes_from_the_chain_data(gate, chain) -> None:
    chain.validity_period = 2
    assert await gate.redeemable_round(winner(creation_round=ROUND - 1))
    assert not await gate.redeemable_round(winner(creation_round=ROUND - 2))
    chain.validity_period = 3
    assert await gate.redeemable_round(winner(creation_round=ROUND - 2))


async def test_redeem_args_redeem_on_chain(evm: LivepeerBroker, orch, chain, nonces, gateway, processor) -> None:
    (signed,) = (await process(processor, await winning_payment(orch, chain, nonces, gateway))).winners
    receipt = evm.redeem(*redeem_args(signed))
    assert redeemed_in(receipt) and evm.is_used(signed.ticket_hash)
