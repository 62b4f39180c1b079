"""Baton's tickets against Livepeer's real TicketBroker on anvil (from the npm package @livepeer/sdk).

A ticket Baton calls
winning must redeem and a ticket it calls losing must not; a tampered ticket or
a wrong rand fails both in Baton and on chain; a ticket redeems once.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton_common.pm import (
    Balances,
    InvalidRecipientRand,
    InvalidTicketRecipient,
    InvalidTicketSignature,
    MemoryBalanceStore,
    MemoryNonceStore,
    MemoryWinningTickets,
    PaymentError,
    PaymentProcessor,
    PaymentValidator,
    SignedTicket,
    Ticket,
    TicketParamsExpired,
    decode_payment,
    sign_personal,
    ticket_params_to_pb,
)
from baton_common.pm.signature import SECP256K1_N
from baton_common.proto import lp_rpc_pb2

from .conftest import PRICE, SECRET
from .pm_evm import REDEEMED_TOPIC, EvmRevert, LivepeerBroker, ticket_args
from .pm_flows import issuer_with_face_value, process, validate, winning_payment
from .pm_gateway import Gateway


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    recipient=st.binary(min_size=20, max_size=20),
    sender=st.binary(min_size=20, max_size=20),
    face_value=st.integers(0, 2**256 - 1),
    win_prob=st.integers(0, 2**256 - 1),
    nonce=st.integers(0, 2**32 - 1),
    rand_hash=st.binary(min_size=32, max_size=32),
    round_=st.integers(1, 2**64),
    block_hash=st.binary(min_size=32, max_size=32),
)
def test_contract_hashes_tickets_like_baton(
    evm: LivepeerBroker, recipient, sender, face_value, win_prob, nonce, rand_hash, round_, block_hash
) -> None:
    ticket = Ticket(recipient, sender, face_value, win_prob, nonce, rand_hash, round_, block_hash)
    assert len(ticket.packed()) == 232
    assert evm.ticket_hash(ticket_args(SignedTicket(ticket, b"", 0, 0))) == ticket.hash()


def test_ticket_without_aux_data_hashes_like_contract_but_cannot_redeem(evm: LivepeerBroker) -> None:
    ticket = Ticket(b"\x01" * 20, b"\x02" * 20, 10, 20, 1, b"\x03" * 32)
    assert len(ticket.packed()) == 168
    args = (*ticket_args(SignedTicket(ticket, b"", 0, 0))[:6], b"")
    assert evm.ticket_hash(args) == ticket.hash()
    with pytest.raises(EvmRevert, match="auxData: must be 64 bytes"):
        evm.redeem(args, sign_personal(b"\x11" * 32, ticket.hash()), 0)


async def test_winning_tickets_redeem_once(evm: LivepeerBroker, orch, chain, nonces, gateway, processor, winners) -> None:
    payment = await winning_payment(orch, chain, nonces, gateway, count=3)
    validation = await process(processor, payment)
    assert validation.credited == 3 and len(validation.winners) == 3
    for signed in (await winners.pending()):
        receipt = evm.redeem_signed(signed)
        topics = [log["topics"][0] for log in receipt["logs"]]
        assert "0x" + REDEEMED_TOPIC.hex() in topics, "WinningTicketRedeemed was not emitted"
        assert evm.is_used(signed.ticket_hash)

    # The same tickets again: not credited, no winner queued twice, no second redemption.
    replay = lp_rpc_pb2.Payment()
    replay.CopyFrom(payment)
    del replay.ticket_sender_params[:]
    replay.ticket_sender_params.extend(reversed(payment.ticket_sender_params))
    with pytest.raises(PaymentError, match="invalid ticket senderNonce: already seen") as refused:
        await process(processor, replay)
    assert refused.value.validation.credited == 0
    assert len(await winners.pending()) == 3
    for signed in (await winners.pending()):
        with pytest.raises(EvmRevert, match="ticket is used"):
            evm.redeem_signed(signed)


WON_OF_24 = 9


async def test_baton_and_contract_agree_on_who_wins(evm: LivepeerBroker, orch, chain, nonces) -> None:
    # A fixed key, clock and seed make the draw the same on every run (WON_OF_24 winners).
    clock = lambda: 1_700_000_000  # noqa: E731
    fixed = MemoryNonceStore(generation=b"\x5e" * 16)
    # about one ticket in three wins
    issuer = issuer_with_face_value(orch, chain, fixed, 3, clock=clock, seed_random=lambda: 0x5EED)
    validator = PaymentValidator(orch, SECRET, chain, fixed, clock=clock)
    gateway = Gateway(b"\x24" * 32)
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 24)
    validation = await validate(validator, decode_payment(payment.SerializeToString()))
    assert validation.credited == 24 and validation.error is None
    won = {w.ticket.sender_nonce for w in validation.winners}
    assert len(won) == WON_OF_24
    rand = validation.winners[0].recipient_rand
    decoded = decode_payment(payment.SerializeToString())
    for entry in decoded.tickets:
        signed = SignedTicket(decoded.ticket(entry), entry.sig, rand, params_expiration(params))
        if entry.sender_nonce in won:
            evm.redeem_signed(signed)
        else:
            with pytest.raises(EvmRevert, match="ticket did not win"):
                evm.redeem_signed(signed)


def params_expiration(params: lp_rpc_pb2.TicketParams) -> int:
    return int.from_bytes(params.expiration_block, "big")


OTHER = b"\x77" * 20

# field -> (what Baton raises, the reverts the contract may answer) for a ticket with that field tampered
TAMPERINGS = {
    "recipient": (InvalidTicketRecipient, ("invalid signature over ticket hash",)),
    "sender": (InvalidRecipientRand, ("invalid signature over ticket hash",)),
    "face_value": (InvalidRecipientRand, ("invalid signature over ticket hash",)),
    "win_prob": (InvalidRecipientRand, ("invalid signature over ticket hash",)),
    "sender_nonce": (InvalidTicketSignature, ("invalid signature over ticket hash",)),
    "recipient_rand_hash": (InvalidRecipientRand, ("recipientRand does not match recipientRandHash",)),
    "creation_round": (InvalidRecipientRand, ("ticket creationRound does not have a block hash",)),
    "creation_round_block_hash": (
        InvalidRecipientRand,
        ("ticket creationRoundBlockHash invalid for creationRound",),
    ),
    "sig": (InvalidTicketSignature, ("invalid signature over ticket hash", "ECDSA: invalid signature")),
}


def tamper_payment(payment: lp_rpc_pb2.Payment, field: str) -> lp_rpc_pb2.Payment:
    bad = lp_rpc_pb2.Payment()
    bad.CopyFrom(payment)
    params, expiration, sender_params = bad.ticket_params, bad.expiration_params, bad.ticket_sender_params[0]
    match field:
        case "recipient":
            params.recipient = OTHER
        case "sender":
            bad.sender = OTHER
        case "face_value":
            params.face_value = (int.from_bytes(params.face_value, "big") + 1).to_bytes(32, "big").lstrip(b"\0")
        case "win_prob":
            params.win_prob = (int.from_bytes(params.win_prob, "big") - 1).to_bytes(32, "big").lstrip(b"\0")
        case "sender_nonce":
            sender_params.sender_nonce += 1000
        case "recipient_rand_hash":
            params.recipient_rand_hash = bytes(b ^ 1 for b in params.recipient_rand_hash)
        case "creation_round":
            expiration.creation_round += 1
        case "creation_round_block_hash":
            expiration.creation_round_block_hash = b"\x42" * 32
        case "sig":
            sender_params.sig = bytes([sender_params.sig[0] ^ 1]) + sender_params.sig[1:]
    return bad


def tamper_ticket(signed: SignedTicket, field: str) -> SignedTicket:
    t = signed.ticket
    changes = {
        "recipient": {"recipient": OTHER},
        "sender": {"sender": OTHER},
        "face_value": {"face_value": t.face_value + 1},
        "win_prob": {"win_prob": t.win_prob - 1},
        "sender_nonce": {"sender_nonce": t.sender_nonce + 1000},
        "recipient_rand_hash": {"recipient_rand_hash": bytes(b ^ 1 for b in t.recipient_rand_hash)},
        "creation_round": {"creation_round": t.creation_round + 1},
        "creation_round_block_hash": {"creation_round_block_hash": b"\x42" * 32},
    }
    if field == "sig":
        return SignedTicket(t, bytes([signed.sig[0] ^ 1]) + signed.sig[1:], signed.recipient_rand, 0)
    fields = {f: getattr(t, f) for f in t.__struct_fields__} | changes[field]
    return SignedTicket(Ticket(**fields), signed.sig, signed.recipient_rand, 0)


@pytest.mark.parametrize("field", sorted(TAMPERINGS))
async def test_tampered_ticket_is_refused_by_baton_and_by_the_contract(
    field: str, evm: LivepeerBroker, orch, chain, nonces, gateway, processor, balances, winners
) -> None:
    chain.active.add(OTHER)  # a tampered recipient must fail on the ticket itself
    payment = await winning_payment(orch, chain, nonces, gateway)

    baton_error, contract_reverts = TAMPERINGS[field]
    with pytest.raises(baton_error):
        await process(processor, tamper_payment(payment, field))
    assert await balances.balance(gateway.address, "manifest") in (None, 0)
    assert (await winners.pending()) == []

    validation = await process(processor, payment)
    (signed,) = validation.winners
    with pytest.raises(EvmRevert) as reverted:
        evm.redeem_signed(tamper_ticket(signed, field))
    assert reverted.value.reason in contract_reverts
    evm.redeem_signed(signed)  # the untampered ticket still redeems: the refusal was the tampering


async def test_wrong_rand_is_refused_by_baton_and_by_the_contract(
    evm: LivepeerBroker, orch, chain, nonces, gateway, processor
) -> None:
    payment = await winning_payment(orch, chain, nonces, gateway)
    # Another secret (a replica with another secret file) reads the params as another generation's:
    # TicketParams expired, which gateways answer by refreshing, not by suspending us.
    stranger = PaymentValidator(orch, b"\x99" * 32, chain, nonces)
    outcome = await validate(stranger, decode_payment(payment.SerializeToString()))
    assert isinstance(outcome.error, TicketParamsExpired) and outcome.credited == 0
    # A tampered seed derives another rand too.
    bad_seed = lp_rpc_pb2.Payment()
    bad_seed.CopyFrom(payment)
    bad_seed.ticket_params.seed = bad_seed.ticket_params.seed[:-1] + bytes([bad_seed.ticket_params.seed[-1] ^ 1])
    with pytest.raises(PaymentError, match="invalid recipientRand"):
        await process(processor, bad_seed)

    (signed,) = (await process(processor, payment)).winners
    with pytest.raises(EvmRevert, match="recipientRand does not match recipientRandHash"):
        evm.redeem(ticket_args(signed), signed.sig, signed.recipient_rand + 1)
    evm.redeem_signed(signed)


async def test_malleated_signatures_are_refused_by_baton_and_by_the_contract(
    evm: LivepeerBroker, orch, chain, nonces, gateway
) -> None:
    payment = await winning_payment(orch, chain, nonces, gateway)
    sig = payment.ticket_sender_params[0].sig
    s = int.from_bytes(sig[32:64], "big")
    high_s = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])  # 27 <-> 28
    raw_v = sig[:64] + bytes([sig[64] - 27])
    for bad_sig, reason in ((high_s, "invalid signature 's' value"), (raw_v, "invalid signature 'v' value")):
        processor = PaymentProcessor(
            PaymentValidator(orch, SECRET, chain, nonces),
            Balances(MemoryBalanceStore()),
            MemoryWinningTickets(),
        )
        bad = lp_rpc_pb2.Payment()
        bad.CopyFrom(payment)
        bad.ticket_sender_params[0].sig = bad_sig
        with pytest.raises(PaymentError, match="invalid ticket signature"):
            await process(processor, bad)
        decoded = decode_payment(payment.SerializeToString())
        good = await validate(PaymentValidator(orch, SECRET, chain, nonces), decoded)
        (signed,) = good.winners
        with pytest.raises(EvmRevert, match=reason):
            evm.redeem(ticket_args(signed), bad_sig, signed.recipient_rand)

