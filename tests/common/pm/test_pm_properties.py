"""Property tests over random tickets, through the whole validation path."""

from __future__ import annotations

import asyncio
from fractions import Fraction

from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from baton_common.pm import (
    ExpirationParams,
    MemoryNonceStore,
    PaymentValidator,
    Scope,
    TicketParams,
    address_of,
    decode_payment,
    generation_tag,
    new_seed,
    rand_key,
    recipient_rand,
    recipient_rand_hash,
    ticket_params_to_pb,
)

from .conftest import SECRET
from .pm_fakes import L1_BLOCK, ORCH_KEY, FakeChain
from .pm_flows import validate
from .pm_gateway import Gateway

ORCH = address_of(ORCH_KEY)
NOW = 1_700_000_000
GENERATION = bytes(range(16))
KEY = rand_key(SECRET, GENERATION)
uint256 = st.integers(0, 2**256 - 1)
# A seed carries its layout, generation, quote time and scope; the low 64 bits are any.
seeds = st.integers(0, 2**64 - 1).map(
    lambda low: new_seed(issued_at=NOW, tag=generation_tag(SECRET, GENERATION), scope=Scope.base(), random=low)
)


@st.composite
def random_params(draw) -> tuple[TicketParams, Fraction, Gateway]:
    gateway = Gateway(draw(st.integers(1, 2**255).map(lambda k: k.to_bytes(32, "big"))))
    price = Fraction(draw(st.integers(1, 2**62)), draw(st.integers(1, 2**62)))
    expiration = ExpirationParams(draw(st.integers(0, 2**62)), draw(st.binary(min_size=32, max_size=32)))
    fields = dict(
        seed=draw(seeds),
        face_value=draw(uint256),
        win_prob=draw(uint256),
        expiration_block=draw(st.integers(L1_BLOCK + 1, 2**64)),
    )
    rand = recipient_rand(KEY, sender=gateway.address, price=price, expiration_params=expiration, **fields)
    params = TicketParams(
        recipient=ORCH, recipient_rand_hash=recipient_rand_hash(rand), expiration_params=expiration, **fields
    )
    return params, price, gateway


@settings(max_examples=40, deadline=None)
@given(random_params(), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4, unique=True))
def test_random_tickets_are_credited_their_exact_ev_and_win_as_the_contract_would(case, nonces) -> None:
    params, price, gateway = case
    payment = gateway.pay(ticket_params_to_pb(params), price=(price.numerator, price.denominator), nonces=nonces)
    store = MemoryNonceStore(generation=GENERATION)
    validator = PaymentValidator(ORCH, SECRET, FakeChain(active={ORCH}), store, clock=lambda: NOW)
    validation = asyncio.run(validate(validator, decode_payment(payment.SerializeToString())))

    assert validation.error is None and validation.credited == len(nonces)
    assert validation.ev == Fraction(len(nonces) * params.face_value * params.win_prob, 2**256 - 1)
    rand = recipient_rand(
        KEY,
        seed=params.seed,
        sender=gateway.address,
        face_value=params.face_value,
        win_prob=params.win_prob,
        expiration_block=params.expiration_block,
        price=price,
        expiration_params=params.expiration_params,
    )
    expected_winners = {
        t.sender_nonce
        for t in payment.ticket_sender_params
        if int.from_bytes(keccak(t.sig + rand.to_bytes(32, "big")), "big") < params.win_prob
    }
    assert {w.ticket.sender_nonce for w in validation.winners} == expected_winners
    assert all(w.recipient_rand == rand for w in validation.winners)

    again = asyncio.run(validate(validator, decode_payment(payment.SerializeToString())))
    assert again.retried and again.ev == validation.ev  # the same payment: its credit, applied once
    replay = gateway.pay(ticket_params_to_pb(params), price=(price.numerator, price.denominator), nonces=[nonces[0]] * 2)
    replayed = asyncio.run(validate(validator, decode_payment(replay.SerializeToString())))
    assert replayed.credited == 0 and replayed.error is not None and not replayed.retried
