"""Bad input: every malformed payment gets a typed error, nothing else escapes, nothing is credited."""

from __future__ import annotations

import asyncio
import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton_common.pm import (
    Balances,
    MemoryBalanceStore,
    MemoryNonceStore,
    MemoryWinningTickets,
    ParamsPolicy,
    PaymentError,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    SignedTicket,
    Ticket,
    TicketParamsIssuer,
    address_of,
    decode_payment,
    decode_payment_header,
    payment_from_pb,
    payment_to_pb,
    ticket_params_to_pb,
)
from baton_common.pm.errors import (
    InvalidLength,
    InvalidTicketSignature,
    MalformedPayment,
    MissingField,
    NegativeNumber,
    NumberTooLarge,
    UndecodablePayment,
    ZeroAddress,
)
from baton_common.pm.wire import max_float_update, signed_ticket_from_pb, signed_ticket_to_pb
from baton_common.proto import lp_rpc_pb2, redeemer_pb2

from .conftest import PRICE, SECRET
from .pm_fakes import ORCH_KEY, FakeChain
from .pm_gateway import Gateway


async def good_payment(issuer, gateway: Gateway) -> lp_rpc_pb2.Payment:
    return gateway.pay(ticket_params_to_pb(await issuer.quote(gateway.address, PRICE)), 2)


async def test_round_trip(issuer, gateway) -> None:
    payment = await good_payment(issuer, gateway)
    values = decode_payment(payment.SerializeToString())
    assert payment_to_pb(values).SerializeToString() == payment.SerializeToString()
    header = base64.b64encode(payment.SerializeToString()).decode()
    assert decode_payment_header(header) == values


def test_numbers_go_out_as_minimal_big_endian() -> None:
    from baton_common.pm import TicketParams

    msg = ticket_params_to_pb(TicketParams(b"\x01" * 20, 0, 256, b"\x02" * 32, 1, 70000))
    assert (msg.face_value, msg.win_prob, msg.seed, msg.expiration_block) == (b"", b"\x01\x00", b"\x01", b"\x01\x11\x70")
    assert not msg.HasField("expiration_params")
    assert max_float_update(10**18).max_float == (10**18).to_bytes(8, "big")
    assert max_float_update(-5).max_float == b""


def mutate(payment: lp_rpc_pb2.Payment, how) -> bytes:
    bad = lp_rpc_pb2.Payment()
    bad.CopyFrom(payment)
    how(bad)
    return bad.SerializeToString()


MALFORMED = {
    "sender 19 bytes": (lambda p: setattr(p, "sender", b"\x01" * 19), InvalidLength, "sender"),
    "sender 21 bytes": (lambda p: setattr(p, "sender", b"\x01" * 21), InvalidLength, "sender"),
    "recipient 32 bytes": (
        lambda p: setattr(p.ticket_params, "recipient", b"\x01" * 32),
        InvalidLength,
        "ticket_params.recipient",
    ),
    "recipient missing": (lambda p: p.ticket_params.ClearField("recipient"), InvalidLength, "ticket_params.recipient"),
    "rand hash 31 bytes": (
        lambda p: setattr(p.ticket_params, "recipient_rand_hash", b"\x01" * 31),
        InvalidLength,
        "ticket_params.recipient_rand_hash",
    ),
    "block hash 20 bytes": (
        lambda p: setattr(p.expiration_params, "creation_round_block_hash", b"\x01" * 20),
        InvalidLength,
        "expiration_params.creation_round_block_hash",
    ),
    "face value 2**256": (
        lambda p: setattr(p.ticket_params, "face_value", (2**256).to_bytes(33, "big")),
        NumberTooLarge,
        "ticket_params.face_value",
    ),
    "win prob 1 KiB": (
        lambda p: setattr(p.ticket_params, "win_prob", b"\xff" * 1024),
        NumberTooLarge,
        "ticket_params.win_prob",
    ),
    "seed 40 bytes": (lambda p: setattr(p.ticket_params, "seed", b"\x01" * 40), NumberTooLarge, "ticket_params.seed"),
    "expiration block 33 bytes": (
        lambda p: setattr(p.ticket_params, "expiration_block", b"\x01" * 33),
        NumberTooLarge,
        "ticket_params.expiration_block",
    ),
    "negative round": (
        lambda p: setattr(p.expiration_params, "creation_round", -1),
        NegativeNumber,
        "expiration_params.creation_round",
    ),
    "negative price": (
        lambda p: setattr(p.expected_price, "pricePerUnit", -1),
        NegativeNumber,
        "expected_price.pricePerUnit",
    ),
    "negative pixels per unit": (
        lambda p: setattr(p.expected_price, "pixelsPerUnit", -1),
        NegativeNumber,
        "expected_price.pixelsPerUnit",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_fields_get_typed_errors(case: str, issuer, gateway, processor, balances) -> None:
    how, error, field = MALFORMED[case]
    data = mutate(await good_payment(issuer, gateway), how)
    with pytest.raises(error) as refused:
        decode_payment(data)
    assert refused.value.field == field and refused.value.status_code == 402
    assert refused.value.code != MalformedPayment.code or error is MalformedPayment


def test_leading_zeros_are_the_same_number() -> None:
    msg = lp_rpc_pb2.Payment(sender=b"\x01" * 20)
    msg.ticket_params.recipient = b"\x02" * 20
    msg.ticket_params.recipient_rand_hash = b"\x03" * 32
    msg.ticket_params.face_value = b"\x00" * 40 + b"\x05"
    assert payment_from_pb(msg).params.face_value == 5


@pytest.mark.parametrize("data", [b"\xff", b"\x0a\x05abc", b"\x12\xff\xff\xff\xff\x0f", b"\x08" * 11])
def test_garbage_is_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodablePayment):
        decode_payment(data)


@pytest.mark.parametrize("header", ["not base64!", "YWJj=", "YWJjZA", "\u00e9t\u00e9"])
def test_bad_base64_header(header: str) -> None:
    with pytest.raises(UndecodablePayment, match="header"):
        decode_payment_header(header)


def test_redeemer_ticket_round_trip_and_zero_addresses() -> None:
    ticket = Ticket(b"\x01" * 20, b"\x02" * 20, 10**18, 2**255, 7, b"\x03" * 32, 5, b"\x04" * 32)
    signed = SignedTicket(ticket, b"\x05" * 65, 2**256 - 1, 123, seed=99)
    msg = signed_ticket_to_pb(signed)
    assert redeemer_pb2.Ticket.FromString(msg.SerializeToString()) == msg
    assert signed_ticket_from_pb(msg) == signed

    for field, setter in [
        ("sender", lambda m: setattr(m, "sender", bytes(20))),
        ("ticket_params.recipient", lambda m: setattr(m.ticket_params, "recipient", bytes(20))),
    ]:
        bad = redeemer_pb2.Ticket()
        bad.CopyFrom(msg)
        setter(bad)
        with pytest.raises(ZeroAddress) as refused:
            signed_ticket_from_pb(bad)
        assert refused.value.field == field
    bad = redeemer_pb2.Ticket()
    bad.CopyFrom(msg)
    bad.sender_params.sig = b"\x05" * 64
    with pytest.raises(InvalidLength, match="sender_params.sig must be 65 bytes"):
        signed_ticket_from_pb(bad)
    bad.sender_params.sig = b"\x05" * 65
    bad.recipient_rand = b"\x01" * 33
    with pytest.raises(NumberTooLarge):
        signed_ticket_from_pb(bad)


def test_redeemer_ticket_without_a_creation_round_block_hash_is_refused() -> None:
    # TicketBroker checks a ticket against its creation round's stored block hash:
    # without expiration params (or with a zero hash) it could never be redeemed.
    ticket = Ticket(b"\x01" * 20, b"\x02" * 20, 10**18, 2**255, 7, b"\x03" * 32, 5, b"\x04" * 32)
    msg = signed_ticket_to_pb(SignedTicket(ticket, b"\x05" * 65, 2**256 - 1, 123, seed=99))
    block_hash = "expiration_params.creation_round_block_hash"
    for field, how in [
        ("expiration_params", lambda m: m.ClearField("expiration_params")),
        (block_hash, lambda m: m.expiration_params.ClearField("creation_round_block_hash")),
        (block_hash, lambda m: setattr(m.expiration_params, "creation_round_block_hash", bytes(32))),
    ]:
        bad = redeemer_pb2.Ticket()
        bad.CopyFrom(msg)
        how(bad)
        with pytest.raises(MissingField) as refused:
            signed_ticket_from_pb(bad)
        assert refused.value.field == field and refused.value.code == "missing_field"


# --- fuzzing: random bytes and random field contents through the whole path ----------


def run_untrusted(data: bytes, *, nonces: MemoryNonceStore | None = None) -> PaymentError | None:
    """Decode and process ``data``: only PaymentError may come out, and nothing is credited.

    Random input can carry no valid recipientRand, so it must leave no trace at
    all: no balance entry (no credit, no session price), no nonce spent, no
    winner. ``nonces`` is the store genuine params were quoted against.
    """
    orch = address_of(ORCH_KEY)
    store, winners = MemoryBalanceStore(), MemoryWinningTickets()
    nonces = nonces or MemoryNonceStore()
    chain = FakeChain(active={orch, b"\x01" * 20})
    processor = PaymentProcessor(PaymentValidator(orch, SECRET, chain, nonces), Balances(store), winners)
    error = None
    payment = None
    try:
        payment = decode_payment(data)
        asyncio.run(processor.process(payment, "fuzz", Scope.base()))
    except PaymentError as exc:
        error = exc
    if error is None:
        # Accepted without any ticket check: only a payment with no ticket to check.
        assert payment is not None and (payment.params is None or not payment.tickets)
    entries = list(store.snapshot().values())
    assert entries == []
    assert nonces.snapshot() == {}
    assert asyncio.run(winners.pending()) == []
    return error


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_escape_as_anything_but_a_payment_error(data: bytes) -> None:
    run_untrusted(data)


def byte_field(*sizes: int):
    return st.one_of(st.binary(max_size=40), *(st.binary(min_size=n, max_size=n) for n in sizes))


payments = st.builds(
    lambda sender, recipient, fv, wp, rrh, seed, exp, rnd, bh, tickets, ppu, px, with_params, with_price: (
        lp_rpc_pb2.Payment(
            sender=sender,
            ticket_params=(
                lp_rpc_pb2.TicketParams(
                    recipient=recipient, face_value=fv, win_prob=wp, recipient_rand_hash=rrh, seed=seed,
                    expiration_block=exp,
                )
                if with_params
                else None
            ),
            expiration_params=lp_rpc_pb2.TicketExpirationParams(creation_round=rnd, creation_round_block_hash=bh),
            ticket_sender_params=[lp_rpc_pb2.TicketSenderParams(sender_nonce=n, sig=s) for n, s in tickets],
            expected_price=lp_rpc_pb2.PriceInfo(pricePerUnit=ppu, pixelsPerUnit=px) if with_price else None,
        )
    ),
    sender=byte_field(20, 0),
    recipient=st.one_of(byte_field(20), st.sampled_from([b"\x01" * 20, address_of(ORCH_KEY)])),
    fv=byte_field(32, 33),
    wp=byte_field(32, 33),
    rrh=byte_field(32),
    seed=byte_field(32),
    exp=byte_field(4, 32),
    rnd=st.integers(-(2**63), 2**63 - 1),
    bh=byte_field(32, 0),
    tickets=st.lists(st.tuples(st.integers(0, 2**32 - 1), byte_field(65)), max_size=4),
    ppu=st.integers(-(2**63), 2**63 - 1),
    px=st.integers(-(2**63), 2**63 - 1),
    with_params=st.booleans(),
    with_price=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payments)
def test_random_payments_never_escape_as_anything_but_a_payment_error(payment: lp_rpc_pb2.Payment) -> None:
    error = run_untrusted(payment.SerializeToString())
    if payment.HasField("ticket_params") and payment.ticket_sender_params and payment.sender:
        assert error is not None  # tickets on params Baton never quoted are always refused


QUOTED_NONCES = MemoryNonceStore()
"""The nonce state QUOTED was quoted against (its generation keys the rand)."""


def quoted_payment() -> lp_rpc_pb2.Payment:
    orch = address_of(ORCH_KEY)
    issuer = TicketParamsIssuer(ParamsPolicy(recipient=orch), SECRET, FakeChain(active={orch}), QUOTED_NONCES)
    gateway = Gateway(b"\x07" * 32)
    return gateway.pay(ticket_params_to_pb(asyncio.run(issuer.quote(gateway.address, PRICE))), 0)


QUOTED = quoted_payment()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=70)), min_size=1, max_size=6))
def test_forged_tickets_on_genuine_params_are_never_credited(tickets: list[tuple[int, bytes]]) -> None:
    payment = lp_rpc_pb2.Payment()
    payment.CopyFrom(QUOTED)
    for nonce, sig in tickets:
        payment.ticket_sender_params.add(sender_nonce=nonce, sig=sig)
    # Genuine params prove their price, but with no ticket well signed nothing is spent or fixed.
    error = run_untrusted(payment.SerializeToString(), nonces=QUOTED_NONCES)
    assert isinstance(error, InvalidTicketSignature)
    assert QUOTED_NONCES.snapshot() == {}
