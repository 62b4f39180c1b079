"""Payment validation: go-livepeer's checks, in their order, with their texts (spec 3.5)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from baton_common.errors import BatonError
from baton_common.pm import (
    MAX_PARAMS_AGE,
    ZERO_ADDRESS,
    FatalTicketError,
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
    PaymentError,
    PaymentValidator,
    RecipientInactive,
    Scope,
    SenderInfo,
    SenderInfoUnavailable,
    SenderUnlocking,
    TicketParamsExpired,
    TicketParamsIssuer,
    TooManyNonces,
    checksum_address,
    decode_payment,
    errors,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2

from .conftest import PRICE, SECRET, TICKET_EV
from .pm_fakes import ROUND
from .pm_flows import validate
from .pm_gateway import Gateway


async def params_for(issuer: TicketParamsIssuer, gateway: Gateway, price: Fraction = PRICE):
    return ticket_params_to_pb(await issuer.quote(gateway.address, price))


def decoded(payment: lp_rpc_pb2.Payment):
    return decode_payment(payment.SerializeToString())


async def test_valid_tickets_are_worth_their_exact_ev(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    validation = await validate(validator, decoded(gateway.pay(params, 3)))
    assert validation.error is None
    assert validation.received == validation.credited == 3
    face_value, win_prob = (int.from_bytes(getattr(params, f), "big") for f in ("face_value", "win_prob"))
    assert validation.ev == Fraction(3 * face_value * win_prob, 2**256 - 1)
    assert isinstance(validation.ev, Fraction) and validation.ev >= 3 * TICKET_EV
    assert validation.price == PRICE and validation.sender == gateway.address


async def test_payment_without_ticket_params_is_accepted_and_fixes_no_price(validator, gateway) -> None:
    # go-livepeer fixes a zero session price here; nothing proves that price, so Baton fixes none.
    validation = await validate(validator, decoded(lp_rpc_pb2.Payment(sender=gateway.address)))
    assert validation.price is None and validation.ev == 0 and validation.error is None
    assert (await validate(validator, decoded(lp_rpc_pb2.Payment()))).sender == ZERO_ADDRESS


async def test_payment_level_checks_raise_in_go_livepeers_order(issuer, gateway, validator, chain, orch) -> None:
    payment = gateway.pay(await params_for(issuer, gateway), 1)

    no_sender = lp_rpc_pb2.Payment()
    no_sender.CopyFrom(payment)
    no_sender.ClearField("sender")
    with pytest.raises(MissingSender) as missing:
        await validate(validator, decoded(no_sender))
    assert str(missing.value) == f"Could not find Sender for payment: recipient={checksum_address(orch)} tickets=1"

    no_price = lp_rpc_pb2.Payment()
    no_price.CopyFrom(payment)
    no_price.ClearField("expected_price")
    chain.active.clear()  # inactive AND no price: the inactive recipient is reported first
    with pytest.raises(RecipientInactive) as inactive:
        await validate(validator, decoded(no_price))
    assert str(inactive.value) == (
        f"orchestrator {checksum_address(orch)} is inactive in round {ROUND}, cannot process payments"
    )
    chain.active.add(orch)
    with pytest.raises(InvalidExpectedPrice, match='^invalid expected price sent with payment err="expected price is nil"$'):
        await validate(validator, decoded(no_price))

    zero_ppu = lp_rpc_pb2.Payment()
    zero_ppu.CopyFrom(payment)
    zero_ppu.expected_price.pixelsPerUnit = 0
    with pytest.raises(InvalidExpectedPrice, match='err="pixels per unit is 0"'):
        await validate(validator, decoded(zero_ppu))

    no_expiration = lp_rpc_pb2.Payment()
    no_expiration.CopyFrom(payment)
    no_expiration.ClearField("expiration_params")
    with pytest.raises(MissingExpirationParams):
        await validate(validator, decoded(no_expiration))


async def test_a_payment_without_tickets_is_worth_nothing_and_fixes_no_price(issuer, gateway, validator) -> None:
    validation = await validate(validator, decoded(gateway.pay(await params_for(issuer, gateway), 0)))
    assert validation.error is None and validation.credited == 0 and validation.ev == 0
    assert validation.price is None  # no ticket, no recipientRand check: the claimed price is unproven


@pytest.mark.parametrize("withdraw_round, unlocking", [(0, False), (ROUND + 2, False), (ROUND + 1, True), (ROUND, True)])
async def test_unlocking_sender_is_fatal(issuer, gateway, validator, chain, withdraw_round, unlocking) -> None:
    chain.senders[gateway.address] = SenderInfo(
        deposit=10**18, withdraw_round=withdraw_round, reserve_funds_remaining=10**20
    )
    validation = await validate(validator, decoded(gateway.pay(await params_for(issuer, gateway), 2)))
    if unlocking:
        assert isinstance(validation.error, SenderUnlocking) and validation.error.fatal
        assert str(validation.error) == (
            f"deposit and reserve for sender {checksum_address(gateway.address)} is set to unlock soon"
        )
        assert validation.credited == 0 and validation.price is None
    else:
        assert validation.error is None and validation.price == PRICE


async def test_sender_info_failure_is_fatal_and_answered_400(issuer, gateway, validator, chain) -> None:
    params = await params_for(issuer, gateway)
    chain.errors["sender_info"] = TimeoutError("HTTP 429 from https://rpc.example/v2/sk_live_SECRETKEY123")
    validation = await validate(validator, decoded(gateway.pay(params, 1)))
    assert isinstance(validation.error, SenderInfoUnavailable)
    # Only the failure's kind reaches the gateway: the chain port's text may hold an RPC URL and its key.
    assert str(validation.error) == f"could not get sender info for {checksum_address(gateway.address)}: TimeoutError"
    assert validation.error.status_code == 400  # spec section 2: ProcessPayment failures are 400 + text


async def test_ticket_for_another_recipient_is_fatal(chain, gateway, validator) -> None:
    other = b"\x0f" * 20
    chain.active.add(other)
    foreign = TicketParamsIssuer(ParamsPolicy(recipient=other, ticket_ev=TICKET_EV), SECRET, chain, MemoryNonceStore())
    validation = await validate(validator, decoded(gateway.pay(await params_for(foreign, gateway), 1)))
    assert isinstance(validation.error, InvalidTicketRecipient) and str(validation.error) == "invalid ticket recipient"


async def test_zero_sender_is_fatal(issuer, validator) -> None:
    params = ticket_params_to_pb(await issuer.quote(ZERO_ADDRESS, PRICE))
    payment = Gateway.random().pay(params, 1)
    payment.sender = ZERO_ADDRESS
    validation = await validate(validator, decoded(payment))
    assert isinstance(validation.error, InvalidTicketSender) and str(validation.error) == "invalid ticket sender"


async def test_the_gateway_must_echo_the_quoted_price(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway, Fraction(2, 3))
    validation = await validate(validator, decoded(gateway.pay(params, 1, price=(2, 1))))
    assert isinstance(validation.error, InvalidRecipientRand)
    assert str(validation.error) == "invalid recipientRand for ticket recipientRandHash"
    # The same price written unreduced is the same price.
    assert (await validate(validator, decoded(gateway.pay(params, 1, price=(4, 6))))).error is None


async def test_tickets_after_the_first_error_are_not_credited(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    payment = gateway.pay(params, 3)
    payment.ticket_sender_params[1].sig = payment.ticket_sender_params[0].sig  # wrong sig for nonce 2
    validation = await validate(validator, decoded(payment))
    assert isinstance(validation.error, InvalidTicketSignature) and not validation.error.fatal
    assert str(validation.error) == "invalid ticket signature"
    assert validation.credited == 1 and validation.ev == params_ev(params)
    # Nonce 3 was well signed, so it was recorded although not credited (as go-livepeer does).
    replay = await validate(validator, decoded(gateway.pay(params, nonces=[3])))
    assert isinstance(replay.error, NonceAlreadySeen)


def params_ev(params: lp_rpc_pb2.TicketParams) -> Fraction:
    fv, wp = (int.from_bytes(getattr(params, f), "big") for f in ("face_value", "win_prob"))
    return Fraction(fv * wp, 2**256 - 1)


async def test_replayed_and_repeated_nonces(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    payment = gateway.pay(params, 2)
    assert (await validate(validator, decoded(payment))).credited == 2
    retry = await validate(validator, decoded(payment))  # the same batch again: its journaled credit
    assert retry.retried and retry.credited == 2
    replay = await validate(validator, decoded(gateway.pay(params, nonces=[1, 2, 3])))
    assert replay.credited == 0 and not replay.retried
    assert str(replay.error) == (
        f"invalid ticket senderNonce: already seen sender={checksum_address(gateway.address)} nonce=1"
    )
    twice = await validate(validator, decoded(gateway.pay(params, nonces=[7, 7])))
    assert twice.credited == 1 and isinstance(twice.error, NonceAlreadySeen) and twice.error.nonce == 7


async def test_at_most_600_nonces_per_recipient_rand(issuer, gateway, validator) -> None:
    params = await params_for(issuer, gateway)
    for _ in range(6):
        assert (await validate(validator, decoded(gateway.pay(params, 100)))).credited == 100
    over = await validate(validator, decoded(gateway.pay(params, 1)))
    assert isinstance(over.error, TooManyNonces) and over.credited == 0
    assert str(over.error) == (
        f"invalid ticket senderNonce: too many values sender={checksum_address(gateway.address)} nonce=601"
    )
    # A fresh quote starts a fresh series.
    assert (await validate(validator, decoded(gateway.pay(await params_for(issuer, gateway), 1)))).credited == 1


async def test_expired_params(issuer, gateway, validator, chain) -> None:
    params = await params_for(issuer, gateway)
    chain.l1_block += 39
    assert (await validate(validator, decoded(gateway.pay(params, 1)))).error is None
    chain.l1_block += 1  # expirationBlock <= last seen L1 block
    expired = await validate(validator, decoded(gateway.pay(params, 1)))
    assert isinstance(expired.error, TicketParamsExpired) and str(expired.error) == "TicketParams expired"
    assert expired.credited == 0


async def test_winners_are_reported_even_when_expired_or_replayed(orch, chain, gateway) -> None:
    chain.gas = 1
    store = MemoryNonceStore()
    always = TicketParamsIssuer(
        ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV), SECRET, chain, store
    )
    validator = PaymentValidator(orch, SECRET, chain, store)
    params = await params_for(always, gateway)
    payment = gateway.pay(params, 2)
    first = await validate(validator, decoded(payment))
    assert len(first.winners) == 2 and first.credited == 2
    winner = first.winners[0]
    assert winner.ticket.hash() == decoded(payment).ticket(decoded(payment).tickets[0]).hash()
    assert winner.expiration_block == int.from_bytes(params.expiration_block, "big")
    replay = await validate(validator, decoded(gateway.pay(params, nonces=[2, 1])))
    assert len(replay.winners) == 2 and replay.credited == 0  # the winner store keeps one copy per hash
    chain.l1_block += 100
    late = await validate(validator, decoded(gateway.pay(params, 1)))
    assert isinstance(late.error, TicketParamsExpired) and len(late.winners) == 1


async def test_any_replica_validates_what_another_issued_and_credits_it_once(
    orch, chain, issuer, gateway, nonces
) -> None:
    replica_a = PaymentValidator(orch, SECRET, chain, nonces)
    replica_b = PaymentValidator(orch, SECRET, chain, nonces)
    params = await params_for(issuer, gateway)
    assert (await validate(replica_b, decoded(gateway.pay(params, nonces=[1, 2])))).credited == 2
    assert isinstance((await validate(replica_a, decoded(gateway.pay(params, nonces=[2])))).error, NonceAlreadySeen)


def test_error_codes_are_unique_and_payment_errors_are_400_or_402() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(c, BatonError) for c in classes)
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        if issubclass(cls, errors.MalformedPayment):
            assert cls.status_code == 402, cls  # an unparseable Livepeer-Payment (spec section 2)
        elif issubclass(cls, PaymentError):
            assert cls.status_code == 400, cls  # ProcessPayment failure: 400 + the text (spec section 2)


# Each case makes a 2-ticket payment whose second ticket (or whole batch, for a fatal
# error) hits the error. What fatal means is what a gateway sees: a fatal error spends
# no nonce and credits nothing; a non-fatal one credits the tickets before it and
# still spends the nonces of the well-signed tickets, as go-livepeer does.
async def _unlocking(issuer, gateway, chain, orch):
    chain.senders[gateway.address] = SenderInfo(deposit=10**18, withdraw_round=ROUND, reserve_funds_remaining=10**20)
    return gateway.pay(await params_for(issuer, gateway), 2)


async def _no_sender_info(issuer, gateway, chain, orch):
    payment = gateway.pay(await params_for(issuer, gateway), 2)
    chain.errors["sender_info"] = ConnectionError("down")
    return payment


async def _foreign_recipient(issuer, gateway, chain, orch):
    other = b"\x0f" * 20
    chain.active.add(other)
    foreign = TicketParamsIssuer(ParamsPolicy(recipient=other, ticket_ev=TICKET_EV), SECRET, chain, MemoryNonceStore())
    return gateway.pay(await params_for(foreign, gateway), 2)


async def _zero_sender(issuer, gateway, chain, orch):
    payment = gateway.pay(ticket_params_to_pb(await issuer.quote(ZERO_ADDRESS, PRICE)), 2)
    payment.sender = ZERO_ADDRESS
    return payment


async def _wrong_price(issuer, gateway, chain, orch):
    return gateway.pay(await params_for(issuer, gateway), 2, price=(3, 1))


async def _bad_second_sig(issuer, gateway, chain, orch):
    payment = gateway.pay(await params_for(issuer, gateway), 2)
    payment.ticket_sender_params[1].sig = payment.ticket_sender_params[0].sig
    return payment


async def _repeated_nonce(issuer, gateway, chain, orch):
    return gateway.pay(await params_for(issuer, gateway), nonces=[4, 4])


async def _second_nonce_over_the_limit(issuer, gateway, chain, orch):
    return gateway.pay(await params_for(issuer, gateway), nonces=[1, 2])  # the validator allows 1 nonce


async def _expired(issuer, gateway, chain, orch):
    payment = gateway.pay(await params_for(issuer, gateway), 2)
    chain.l1_block += 40
    return payment


# case -> (payment maker, error, tickets credited, nonces spent)
TICKET_ERRORS = {
    "sender unlocking": (_unlocking, SenderUnlocking, 0, 0),
    "sender info unavailable": (_no_sender_info, SenderInfoUnavailable, 0, 0),
    "foreign recipient": (_foreign_recipient, InvalidTicketRecipient, 0, 0),
    "zero sender": (_zero_sender, InvalidTicketSender, 0, 0),
    "wrong price": (_wrong_price, InvalidRecipientRand, 0, 0),
    "bad signature": (_bad_second_sig, InvalidTicketSignature, 1, 1),
    "repeated nonce": (_repeated_nonce, NonceAlreadySeen, 1, 1),
    "too many nonces": (_second_nonce_over_the_limit, TooManyNonces, 1, 1),
    "expired": (_expired, TicketParamsExpired, 0, 2),
}


@pytest.mark.parametrize("case", sorted(TICKET_ERRORS))
async def test_fatal_errors_spend_and_credit_nothing_others_credit_the_tickets_before_them(
    case: str, issuer, gateway, chain, orch, nonces
) -> None:
    make, error, credited, spent = TICKET_ERRORS[case]
    validator = PaymentValidator(orch, SECRET, chain, nonces, max_nonces=1 if case == "too many nonces" else 600)
    validation = await validate(validator, decoded(await make(issuer, gateway, chain, orch)))
    assert type(validation.error) is error
    assert validation.error.fatal is issubclass(error, FatalTicketError) is (spent == 0)
    assert validation.credited == credited and validation.received == 2
    assert sum(len(record.nonces) for record in nonces.snapshot().values()) == spent
    # Only a batch whose recipientRand checked out fixes the session price.
    assert validation.price == (None if validation.error.fatal else PRICE)


async def test_params_quoted_too_long_ago_are_expired_even_when_the_chain_view_stalls(
    orch, chain, policy, gateway
) -> None:
    now = [1_700_000_000.0]
    store = MemoryNonceStore()
    issuer = TicketParamsIssuer(policy, SECRET, chain, store, clock=lambda: now[0])
    validator = PaymentValidator(orch, SECRET, chain, store, clock=lambda: now[0])
    params = await params_for(issuer, gateway)
    payment = gateway.pay(params, 1)
    assert (await validate(validator, decoded(payment))).credited == 1
    # The last seen L1 block stalls (it never moves in this test) while time passes.
    now[0] += MAX_PARAMS_AGE
    assert isinstance((await validate(validator, decoded(gateway.pay(params, nonces=[1, 2])))).error, NonceAlreadySeen)
    # Past the age limit, the nonce record may be gone (a store's wall-clock backstop):
    # the replay is refused by age all the same.
    now[0] += 1
    store._records.clear()  # as the bucket's TTL would
    replay = await validate(validator, decoded(gateway.pay(params, nonces=[1])))
    assert isinstance(replay.error, TicketParamsExpired) and replay.credited == 0
    # Params stamped in the future beyond the limit (a wild clock) are refused too.
    now[0] -= 3 * MAX_PARAMS_AGE
    assert isinstance((await validate(validator, decoded(gateway.pay(params, 1)))).error, TicketParamsExpired)


async def test_check_writes_nothing(issuer, gateway, validator, nonces) -> None:
    payment = decoded(gateway.pay(await params_for(issuer, gateway), 3))
    checked = await validator.check(payment, Scope.base())
    assert checked.error is None and checked.received == 3 and nonces.snapshot() == {}
    assert (await validator.check(payment, Scope.base())) == checked  # unspent: checking again sees the same
    first = (await validator.commit(checked, "key")).validation
    assert first.credited == 3 and not first.retried
    again = (await validator.commit(checked, "key")).validation  # now spent: the same commit is a retry
    assert again.retried and again.credited == 3
