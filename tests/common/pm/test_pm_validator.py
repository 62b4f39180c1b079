"""Payment validation: go-livepeer's checks, in their order, with their texts (spec 3.5)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from baton_common.pm import (
    ZERO_ADDRESS,
    InvalidExpectedPrice,
    InvalidRecipientRand,
    InvalidTicketRecipient,
    InvalidTicketSender,
    InvalidTicketSignature,
    MemoryNonceStore,
    MissingExpirationParams,
    MissingSender,
    NonceAlreadySeen,
    ParamsPolicy,
    PaymentValidator,
    RecipientInactive,
    SenderInfo,
    SenderInfoUnavailable,
    SenderUnlocking,
    TicketParamsExpired,
    TicketParamsIssuer,
    TooManyNonces,
    checksum_address,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2

from .conftest import PRICE, SECRET, TICKET_EV
from .pm_fakes import ROUND
from .pm_gateway import Gateway


async def params_for(issuer: TicketParamsIssuer, gateway: Gateway, price: Fraction = PRICE):
    return ticket_params_to_pb(await issuer.quote(gateway.address, price))


def decoded(payment: lp_rpc_pb2.Payment):
    return decode_payment(payment.SerializeToString())


async def test_valid_tickets_are_worth_their_exact_ev(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    validation = await validator.validate(decoded(gateway.pay(params, 3)))
    assert validation.error is None
    assert validation.received == validation.credited == 3
    face_value, win_prob = (int.from_bytes(getattr(params, f), "big") for f in ("face_value", "win_prob"))
    assert validation.ev == Fraction(3 * face_value * win_prob, 2**256 - 1)
    assert isinstance(validation.ev, Fraction) and validation.ev >= 3 * TICKET_EV
    assert validation.price == PRICE and validation.sender == gateway.address


async def test_payment_without_ticket_params_fixes_a_zero_price(validator, gateway) -> None:
    validation = await validator.validate(decoded(lp_rpc_pb2.Payment(sender=gateway.address)))
    assert validation.price == 0 and validation.ev == 0 and validation.error is None
    assert (await validator.validate(decoded(lp_rpc_pb2.Payment()))).sender == ZERO_ADDRESS


async def test_payment_level_checks_raise_in_go_livepeers_order(issuer, gateway, validator, chain, orch) -> None:
    payment = gateway.pay(await params_for(issuer, gateway), 1)

    no_sender = lp_rpc_pb2.Payment()
    no_sender.CopyFrom(payment)
    no_sender.ClearField("sender")
    with pytest.raises(MissingSender, match="^Could not find Sender for payment$"):
        await validator.validate(decoded(no_sender))

    no_price = lp_rpc_pb2.Payment()
    no_price.CopyFrom(payment)
    no_price.ClearField("expected_price")
    chain.active.clear()  # inactive AND no price: the inactive recipient is reported first
    with pytest.raises(RecipientInactive) as inactive:
        await validator.validate(decoded(no_price))
    assert str(inactive.value) == (
        f"orchestrator {checksum_address(orch)} is inactive in round {ROUND}, cannot process payments"
    )
    chain.active.add(orch)
    with pytest.raises(InvalidExpectedPrice, match='^invalid expected price sent with payment err="expected price is nil"$'):
        await validator.validate(decoded(no_price))

    zero_ppu = lp_rpc_pb2.Payment()
    zero_ppu.CopyFrom(payment)
    zero_ppu.expected_price.pixelsPerUnit = 0
    with pytest.raises(InvalidExpectedPrice, match='err="pixels per unit is 0"'):
        await validator.validate(decoded(zero_ppu))

    no_expiration = lp_rpc_pb2.Payment()
    no_expiration.CopyFrom(payment)
    no_expiration.ClearField("expiration_params")
    with pytest.raises(MissingExpirationParams):
        await validator.validate(decoded(no_expiration))


async def test_a_payment_without_tickets_is_worth_nothing(issuer, gateway, validator) -> None:
    validation = await validator.validate(decoded(gateway.pay(await params_for(issuer, gateway), 0)))
    assert validation.error is None and validation.credited == 0 and validation.price == PRICE


@pytest.mark.parametrize("withdraw_round, unlocking", [(0, False), (ROUND + 2, False), (ROUND + 1, True), (ROUND, True)])
async def test_unlocking_sender_is_fatal(issuer, gateway, validator, chain, withdraw_round, unlocking) -> None:
    chain.senders[gateway.address] = SenderInfo(
        deposit=10**18, withdraw_round=withdraw_round, reserve_funds_remaining=10**20
    )
    validation = await validator.validate(decoded(gateway.pay(await params_for(issuer, gateway), 2)))
    if unlocking:
        assert isinstance(validation.error, SenderUnlocking) and validation.error.fatal
        assert str(validation.error) == (
            f"deposit and reserve for sender {checksum_address(gateway.address)} is set to unlock soon"
        )
        assert validation.credited == 0 and validation.price == PRICE
    else:
        assert validation.error is None


async def test_sender_info_failure_is_fatal(issuer, gateway, validator, chain) -> None:
    params = await params_for(issuer, gateway)
    chain.sender_info_error = TimeoutError("chain service did not answer")
    validation = await validator.validate(decoded(gateway.pay(params, 1)))
    assert isinstance(validation.error, SenderInfoUnavailable)
    assert "chain service did not answer" in str(validation.error)


async def test_ticket_for_another_recipient_is_fatal(chain, gateway, validator) -> None:
    other = b"\x0f" * 20
    chain.active.add(other)
    foreign = TicketParamsIssuer(ParamsPolicy(recipient=other, ticket_ev=TICKET_EV), SECRET, chain)
    validation = await validator.validate(decoded(gateway.pay(await params_for(foreign, gateway), 1)))
    assert isinstance(validation.error, InvalidTicketRecipient) and str(validation.error) == "invalid ticket recipient"


async def test_zero_sender_is_fatal(issuer, validator) -> None:
    params = ticket_params_to_pb(await issuer.quote(ZERO_ADDRESS, PRICE))
    payment = Gateway.random().pay(params, 1)
    payment.sender = ZERO_ADDRESS
    validation = await validator.validate(decoded(payment))
    assert isinstance(validation.error, InvalidTicketSender) and str(validation.error) == "invalid ticket sender"


async def test_the_gateway_must_echo_the_quoted_price(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway, Fraction(2, 3))
    validation = await validator.validate(decoded(gateway.pay(params, 1, price=(2, 1))))
    assert isinstance(validation.error, InvalidRecipientRand)
    assert str(validation.error) == "invalid recipientRand for ticket recipientRandHash"
    # The same price written unreduced is the same price.
    assert (await validator.validate(decoded(gateway.pay(params, 1, price=(4, 6))))).error is None


async def test_tickets_after_the_first_error_are_not_credited(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    payment = gateway.pay(params, 3)
    payment.ticket_sender_params[1].sig = payment.ticket_sender_params[0].sig  # wrong sig for nonce 2
    validation = await validator.validate(decoded(payment))
    assert isinstance(validation.error, InvalidTicketSignature) and not validation.error.fatal
    assert str(validation.error) == "invalid ticket signature"
    assert validation.credited == 1 and validation.ev == params_ev(params)
    # Nonce 3 was well signed, so it was recorded although not credited (as go-livepeer does).
    replay = await validator.validate(decoded(gateway.pay(params, nonces=[3])))
    assert isinstance(replay.error, NonceAlreadySeen)


def params_ev(params: lp_rpc_pb2.TicketParams) -> Fraction:
    fv, wp = (int.from_bytes(getattr(params, f), "big") for f in ("face_value", "win_prob"))
    return Fraction(fv * wp, 2**256 - 1)


async def test_replayed_and_repeated_nonces(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    payment = gateway.pay(params, 2)
    assert (await validator.validate(decoded(payment))).credited == 2
    replay = await validator.validate(decoded(payment))
    assert replay.credited == 0
    assert str(replay.error) == (
        f"invalid ticket senderNonce: already seen sender={checksum_address(gateway.address)} nonce=1"
    )
    twice = await validator.validate(decoded(gateway.pay(params, nonces=[7, 7])))
    assert twice.credited == 1 and isinstance(twice.error, NonceAlreadySeen) and twice.error.nonce == 7


async def test_at_most_600_nonces_per_recipient_rand(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    for _ in range(6):
        assert (await validator.validate(decoded(gateway.pay(params, 100)))).credited == 100
    over = await validator.validate(decoded(gateway.pay(params, 1)))
    assert isinstance(over.error, TooManyNonces) and over.credited == 0
    assert str(over.error) == (
        f"invalid ticket senderNonce: too many values sender={checksum_address(gateway.address)} nonce=601"
    )
    # A fresh quote starts a fresh series.
    assert (await validator.validate(decoded(gateway.pay(await params_for(issuer, gateway), 1)))).credited == 1


async def test_expired_params(issuer, gateway, validator, chain) -> None:
    params = await params_for(issuer, gateway)
    chain.l1_block += 39
    assert (await validator.validate(decoded(gateway.pay(params, 1)))).error is None
    chain.l1_block += 1  # expirationBlock <= last seen L1 block
    expired = await validator.validate(decoded(gateway.pay(params, 1)))
    assert isinstance(expired.error, TicketParamsExpired) and str(expired.error) == "TicketParams expired"
    assert expired.credited == 0


async def test_winners_are_reported_even_when_expired_or_replayed(orch, chain, gateway) -> None:
    chain.gas = 1
    always = TicketParamsIssuer(
        ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV), SECRET, chain
    )
    validator = PaymentValidator(orch, SECRET, chain, MemoryNonceStore())
    params = await params_for(always, gateway)
    payment = gateway.pay(params, 2)
    first = await validator.validate(decoded(payment))
    assert len(first.winners) == 2 and first.credited == 2
    winner = first.winners[0]
    assert winner.ticket.hash() == decoded(payment).ticket(decoded(payment).tickets[0]).hash()
    assert winner.expiration_block == int.from_bytes(params.expiration_block, "big")
    replay = await validator.validate(decoded(payment))
    assert len(replay.winners) == 2 and replay.credited == 0  # the winner store keeps one copy per hash
    chain.l1_block += 100
    late = await validator.validate(decoded(gateway.pay(params, 1)))
    assert isinstance(late.error, TicketParamsExpired) and len(late.winners) == 1


async def test_any_replica_validates_what_another_issued_and_credits_it_once(orch, chain, issuer, gateway) -> None:
    shared = MemoryNonceStore()
    replica_a = PaymentValidator(orch, SECRET, chain, shared)
    replica_b = PaymentValidator(orch, SECRET, chain, shared)
    payment = decoded(gateway.pay(await params_for(issuer, gateway), 1))
    assert (await replica_b.validate(payment)).credited == 1
    assert isinstance((await replica_a.validate(payment)).error, NonceAlreadySeen)


def test_error_codes_are_machine_readable() -> None:
    errors = [
        MissingSender(),
        RecipientInactive("0x0", 1),
        InvalidExpectedPrice("x"),
        SenderUnlocking("0x0"),
        InvalidTicketRecipient(),
        InvalidTicketSender(),
        InvalidRecipientRand(),
        InvalidTicketSignature(),
        NonceAlreadySeen("0x0", 1),
        TooManyNonces("0x0", 1),
        TicketParamsExpired(),
    ]
    assert len({e.code for e in errors}) == len(errors)
    assert [e.fatal for e in errors[-4:]] == [False] * 4
    assert all(e.fatal for e in errors[3:7])
