"""Quoting TicketParams: face value, max float, win probability, expiration (spec 3.4)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from baton_common.pm import (
    INT64_MAX,
    MAX_WIN_PROB,
    SEED_LAYOUT,
    ExpirationParams,
    InsufficientSenderReserve,
    MemoryNonceStore,
    NoRoundBlockHash,
    ParamsPolicy,
    PaymentValidator,
    PriceInfo,
    QuoteError,
    Scope,
    SenderInfo,
    TicketParamsIssuer,
    decode_payment,
    generation_tag,
    price_info_for,
    rand_key,
    read_seed,
    recipient_rand,
    recipient_rand_hash,
    ticket_params_to_pb,
    win_prob_for,
)

from .conftest import SECRET, TICKET_EV
from .pm_fakes import L1_BLOCK, ROUND, ROUND_BLOCK_HASH, FakeChain
from .pm_flows import validate
from .pm_gateway import Gateway

SENDER = b"\x5e" * 20
GWEI = 10**9


def issuer_for(chain: FakeChain, orch: bytes, **policy) -> TicketParamsIssuer:
    policy = ParamsPolicy(recipient=orch, **({"ticket_ev": TICKET_EV} | policy))
    return TicketParamsIssuer(policy, SECRET, chain, MemoryNonceStore())


async def test_face_value_is_100_times_the_redemption_cost(chain, orch) -> None:
    chain.gas = 2 * GWEI
    assert await issuer_for(chain, orch).face_value(SENDER) == 100 * 350_000 * 2 * GWEI
    arbitrum = issuer_for(chain, orch, redeem_gas=1_200_000)
    assert await arbitrum.face_value(SENDER) == 100 * 1_200_000 * 2 * GWEI


async def test_min_gas_price_is_a_floor(chain, orch) -> None:
    chain.gas = 1 * GWEI
    assert await issuer_for(chain, orch, min_gas_price=5 * GWEI).face_value(SENDER) == 100 * 350_000 * 5 * GWEI


async def test_face_value_is_100_times_ev_when_gas_is_too_cheap(chain, orch) -> None:
    chain.gas = 1  # 100 x txCost = 35,000,000 wei < EV
    assert await issuer_for(chain, orch).face_value(SENDER) == 100 * TICKET_EV


async def test_face_value_is_capped_by_max_float_and_max_face_value(chain, orch) -> None:
    chain.gas = 3 * GWEI
    chain.pool_size = 1
    chain.senders[SENDER] = SenderInfo(deposit=10**18, reserve_funds_remaining=2 * 10**15)
    assert await issuer_for(chain, orch).face_value(SENDER) == 2 * 10**15
    assert await issuer_for(chain, orch, max_face_value=1_100_000 * GWEI).face_value(SENDER) == 1_100_000 * GWEI


async def test_insufficient_sender_reserve_when_max_float_is_below_ev(chain, orch) -> None:
    chain.senders[SENDER] = SenderInfo(reserve_funds_remaining=(TICKET_EV - 1) * chain.pool_size)
    with pytest.raises(InsufficientSenderReserve, match="^insufficient sender reserve$"):
        await issuer_for(chain, orch).face_value(SENDER)
    with pytest.raises(InsufficientSenderReserve):
        await issuer_for(chain, orch).quote(SENDER, Fraction(1))


async def test_insufficient_sender_reserve_when_face_value_cannot_pay_for_redemption(chain, orch) -> None:
    chain.gas = 10 * GWEI  # txCost = 3.5e15
    chain.pool_size = 1
    # Below txCost and below redeemGas x 3 gwei (1.05e15): refused.
    chain.senders[SENDER] = SenderInfo(reserve_funds_remaining=10**15)
    with pytest.raises(InsufficientSenderReserve):
        await issuer_for(chain, orch).face_value(SENDER)
    # Below txCost but covering redeemGas x 3 gwei: gas may come back down in time.
    chain.senders[SENDER] = SenderInfo(reserve_funds_remaining=11 * 10**14)
    assert await issuer_for(chain, orch).face_value(SENDER) == 11 * 10**14


async def test_max_float_shares_the_reserve_across_the_active_pool(chain, orch) -> None:
    chain.pool_size = 4
    chain.senders[SENDER] = SenderInfo(
        deposit=10**18, reserve_funds_remaining=1_000_003, reserve_claimed_in_current_round=400_000
    )
    chain.claimed[(SENDER, orch)] = 50_000
    assert await issuer_for(chain, orch).max_float(SENDER) == (1_400_003 // 4) - 50_000
    chain.pool_size = 0
    assert await issuer_for(chain, orch).max_float(SENDER) == 0


async def test_pending_redemptions_count_unless_the_deposit_covers_them_three_times(chain, orch) -> None:
    chain.pool_size = 1
    chain.senders[SENDER] = SenderInfo(deposit=299, reserve_funds_remaining=10_000)
    chain.pending[SENDER] = 100
    assert await issuer_for(chain, orch).max_float(SENDER) == 10_000 - 100
    chain.senders[SENDER] = SenderInfo(deposit=300, reserve_funds_remaining=10_000)
    assert await issuer_for(chain, orch).max_float(SENDER) == 10_000


def test_win_probability() -> None:
    # go-livepeer's vector (pm/recipient_test.go, TestTicketParams): EV 5, face value 100,000,000.
    assert win_prob_for(100_000_000, 5) == 5789604461865809771178549250434395392663499233282028201972879200395660
    # EV 5, face value 10000: 5 x ceil((2**256-1) / 10000), worked out by hand from the spec formula.
    assert win_prob_for(10_000, 5) == 57896044618658097711785492504343953926634992332820282019728792003956564820
    assert win_prob_for(5, 5) == MAX_WIN_PROB
    assert win_prob_for(0, 5) == 0
    # (2**256-1) is divisible by 3 and by 5: no rounding up then.
    assert win_prob_for(15, 5) == 5 * (MAX_WIN_PROB // 15)
    assert win_prob_for(16, 5) == 5 * (MAX_WIN_PROB // 16 + 1)


async def test_quote(chain, orch, issuer, nonces) -> None:
    params = await issuer.quote(SENDER, Fraction(3, 2))
    assert params.recipient == orch
    assert params.face_value == 100 * 350_000 * chain.gas
    assert params.win_prob == win_prob_for(params.face_value, TICKET_EV)
    assert params.expiration_block == L1_BLOCK + 40
    assert params.expiration_params == ExpirationParams(ROUND, ROUND_BLOCK_HASH)
    seed = read_seed(params.seed)
    generation = await nonces.generation()
    assert seed.layout == SEED_LAYOUT and seed.generation_tag == generation_tag(SECRET, generation)
    assert seed.scope_digest == Scope.base().digest()
    rand = recipient_rand(
        rand_key(SECRET, generation),
        seed=params.seed,
        sender=SENDER,
        face_value=params.face_value,
        win_prob=params.win_prob,
        expiration_block=params.expiration_block,
        price=Fraction(3, 2),
        expiration_params=params.expiration_params,
    )
    assert params.recipient_rand_hash == recipient_rand_hash(rand)
    # What a go-livepeer gateway checks before it pays (spec 3.6).
    assert params.expiration_block - L1_BLOCK > 1
    assert TICKET_EV <= params.ev() < params.face_value
    assert params.ev() - TICKET_EV < 1
    again = await issuer.quote(SENDER, Fraction(3, 2))
    assert again.seed != params.seed and again.recipient_rand_hash != params.recipient_rand_hash


async def test_zero_price_quotes_free_tickets(issuer) -> None:
    params = await issuer.quote(SENDER, Fraction(0))
    assert params.face_value == 0 and params.win_prob == 0
    with pytest.raises(ValueError):
        await issuer.quote(SENDER, Fraction(-1))


def test_the_price_goes_out_as_an_int64_price_info() -> None:
    assert price_info_for(Fraction(4, 6)) == PriceInfo(2, 3)  # reduced
    assert price_info_for(Fraction(INT64_MAX, INT64_MAX - 1)) == PriceInfo(INT64_MAX, INT64_MAX - 1)
    # Beyond int64: floor(price)/1, as go-livepeer's PriceInfoForCaps (spec section 4).
    assert price_info_for(Fraction(2**64 + 1, 3)) == PriceInfo((2**64 + 1) // 3, 1)
    assert price_info_for(Fraction(7, 2**64)) == PriceInfo(0, 1)  # sub-wei: floor is 0
    assert price_info_for(INT64_MAX) == PriceInfo(INT64_MAX, 1)
    with pytest.raises(ValueError, match="does not fit in an int64"):
        price_info_for(Fraction(2**63))
    with pytest.raises(ValueError):
        price_info_for(Fraction(-1, 3))


@pytest.mark.parametrize(
    "price",
    [Fraction(2**64 + 1, 3), Fraction(10**30, 10**12 + 1), Fraction(1, 2**64 + 3), Fraction(5, 7)],
    ids=["numerator beyond int64", "both beyond int64", "denominator beyond int64", "fits"],
)
async def test_a_quoted_price_is_one_the_gateway_can_echo(chain, orch, issuer, nonces, price: Fraction) -> None:
    # Before, a price that int64 cannot carry made every payment fail with "invalid recipientRand".
    gateway = Gateway.random()
    sent = price_info_for(price)
    payment = gateway.pay(
        ticket_params_to_pb(await issuer.quote(gateway.address, price)), 1, price=(sent.price_per_unit, sent.pixels_per_unit)
    )
    validator = PaymentValidator(orch, SECRET, chain, nonces)
    validation = await validate(validator, decode_payment(payment.SerializeToString()))
    assert validation.error is None and validation.credited == 1 and validation.price == sent.fraction()


async def test_quote_takes_the_price_info_as_sent(chain, orch, issuer, nonces) -> None:
    gateway = Gateway.random()
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PriceInfo(10, 4)))  # unreduced is fine
    validator = PaymentValidator(orch, SECRET, chain, nonces)
    validation = await validate(validator, decode_payment(gateway.pay(params, 1, price=(10, 4)).SerializeToString()))
    assert validation.error is None and validation.price == Fraction(5, 2)
    for bad in (PriceInfo(-1, 1), PriceInfo(1, 0), PriceInfo(1, 2**63), PriceInfo(2**63, 1)):
        with pytest.raises(ValueError):
            await issuer.quote(gateway.address, bad)


async def test_expiration_params_fall_back_to_the_previous_round_without_a_block_hash(chain, issuer) -> None:
    chain.block_hashes = {ROUND: bytes(32), ROUND - 1: b"\x44" * 32}
    assert await issuer.expiration_params() == ExpirationParams(ROUND - 1, b"\x44" * 32)


async def test_no_quote_without_a_block_hash_for_either_round(chain, issuer) -> None:
    # Tickets carrying a zero block hash could never be redeemed: refuse to quote them.
    chain.block_hashes = {ROUND: bytes(32), ROUND - 1: bytes(32), ROUND - 2: b"\x44" * 32}
    with pytest.raises(NoRoundBlockHash) as refused:
        await issuer.quote(SENDER, Fraction(1))
    assert isinstance(refused.value, QuoteError) and refused.value.code == "no_round_block_hash"
    assert str(refused.value) == f"no L1 block hash for round {ROUND} or {ROUND - 1}; cannot quote redeemable tickets"


async def test_tx_cost_multiplier(chain, orch) -> None:
    chain.gas = GWEI
    assert await issuer_for(chain, orch).tx_cost_multiplier(SENDER) == 100
    chain.gas = 0
    assert await issuer_for(chain, orch).tx_cost_multiplier(SENDER) == 0
