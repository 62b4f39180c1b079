"""The attacks an adversarial review reproduced, driven as a hostile gateway would: all refused.

Each case forges what a gateway controls (the echoed price, the params it sends
back, the manifest it names) through the public processing path, and checks
the gateway got nothing it did not pay for: no credit, no session price, no
spent nonce that could later be replayed, no unredeemable winner.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from baton_common.errors import ConfigError
from baton_common.pm import (
    Balances,
    InvalidExpectedPrice,
    InvalidRecipientRand,
    MemoryBalanceStore,
    MemoryNonceStore,
    MemoryWinningTickets,
    ParamsNotForThisJob,
    ParamsPolicy,
    PaymentError,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    TicketParamsExpired,
    TicketParamsIssuer,
    decode_payment,
    require_durable,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2

from .conftest import SECRET, TICKET_EV
from .pm_fakes import FakeChain
from .pm_gateway import Gateway, mbe


class Orchestrator:
    """One orchestrator's payment core over memory stores, with a ticket that wins one time in ``odds``."""

    def __init__(self, orch: bytes, chain: FakeChain, *, odds: int = 1, nonces: MemoryNonceStore | None = None):
        chain.gas = 1
        self.nonces = nonces or MemoryNonceStore()
        policy = ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=odds * TICKET_EV)
        self.issuer = TicketParamsIssuer(policy, SECRET, chain, self.nonces)
        self.store = MemoryBalanceStore()
        self.balances = Balances(self.store)
        self.winners = MemoryWinningTickets()
        self.processor = PaymentProcessor(
            PaymentValidator(orch, SECRET, chain, self.nonces), self.balances, self.winners
        )

    async def quote(self, gateway: Gateway, price: Fraction, scope: Scope | None = None) -> lp_rpc_pb2.TicketParams:
        return ticket_params_to_pb(await self.issuer.quote(gateway.address, price, scope))

    async def pay(self, payment: lp_rpc_pb2.Payment, manifest: str, scope: Scope | None = None):
        return await self.processor.process(
            decode_payment(payment.SerializeToString()), manifest, scope or Scope.base()
        )

    async def assert_untouched(self, gateway: Gateway, manifest: str) -> None:
        assert await self.balances.balance(gateway.address, manifest) is None
        assert await self.balances.fixed_price(gateway.address, manifest) is None


def forge(params: lp_rpc_pb2.TicketParams, **fields: int) -> lp_rpc_pb2.TicketParams:
    """The params a gateway sends back, with some numbers of its own choosing."""
    forged = lp_rpc_pb2.TicketParams()
    forged.CopyFrom(params)
    for name, value in fields.items():
        setattr(forged, name, mbe(value))
    return forged


def number(params: lp_rpc_pb2.TicketParams, name: str) -> int:
    return int.from_bytes(getattr(params, name), "big")


async def test_price_cut_by_moving_bytes_between_price_fields(orch, chain) -> None:
    """Quoted 1200/1, claimed 4/45057: go-livepeer's HMAC input was the same bytes."""
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1200))
    with pytest.raises(InvalidRecipientRand):
        await o.pay(gateway.pay(params, 3, price=(4, 45057)), "m")
    await o.assert_untouched(gateway, "m")
    assert o.nonces.snapshot() == {} and await o.winners.pending() == []


async def test_price_zero_with_the_price_moved_into_the_expiration_block(orch, chain) -> None:
    """exp' = exp * 256^k + num, price 0/1: would fix price 0 and store winners never redeemable."""
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1200))
    exp = number(params, "expiration_block")
    forged = forge(params, expiration_block=exp * 256**2 + 1200)
    for price in ((0, 1), (1, 1)):
        with pytest.raises(PaymentError) as refused:
            await o.pay(gateway.pay(forged, 3, price=price), "m")
        assert isinstance(refused.value, InvalidExpectedPrice | InvalidRecipientRand)
    await o.assert_untouched(gateway, "m")
    assert o.nonces.snapshot() == {} and await o.winners.pending() == []


async def test_face_value_raised_past_max_float_by_a_byte_from_the_win_probability(orch, chain) -> None:
    o = Orchestrator(orch, chain, odds=3)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1))
    fv, wp = number(params, "face_value"), number(params, "win_prob")
    top, rest = divmod(wp, 256 ** ((wp.bit_length() + 7) // 8 - 1))
    forged = forge(params, face_value=fv * 256 + top, win_prob=rest)
    with pytest.raises(InvalidRecipientRand):
        await o.pay(gateway.pay(forged, 2), "m")
    await o.assert_untouched(gateway, "m")
    assert await o.winners.pending() == []


async def test_tampered_expiration_block_and_expected_price_are_refused(orch, chain) -> None:
    """The ticket hash covers neither field, so only the validator can refuse them."""
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(7, 3))
    exp = number(params, "expiration_block")
    for forged, price in (
        (forge(params, expiration_block=exp + 1), (7, 3)),
        (forge(params, expiration_block=exp - 1), (7, 3)),
        (forge(params, expiration_block=exp * 256), (7, 3)),
        (params, (7, 4)),
        (params, (14, 6 + 1)),
        (params, (1, 3)),
    ):
        with pytest.raises(InvalidRecipientRand):
            await o.pay(gateway.pay(forged, 2, price=price), "m")
    await o.assert_untouched(gateway, "m")
    assert o.nonces.snapshot() == {}
    # The honest echo (any equal fraction) is accepted.
    assert (await o.pay(gateway.pay(params, 1, price=(14, 6)), "m")).credited == 1


async def test_a_zero_price_is_refused_for_tickets_with_a_face_value(orch, chain) -> None:
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(5))
    with pytest.raises(InvalidExpectedPrice, match="price is 0"):
        await o.pay(gateway.pay(params, 1, price=(0, 1)), "m")
    await o.assert_untouched(gateway, "m")


async def test_replay_through_a_throwaway_payment_with_a_shifted_expiration_block(orch, chain) -> None:
    """A forged record with a past expiry, dropped by cleanup, used to let honest tickets in again."""
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1))
    honest = gateway.pay(params, 10)
    assert (await o.pay(honest, "m")).credited == 10
    credited = await o.balances.balance(gateway.address, "m")
    exp = number(params, "expiration_block")
    throwaway = forge(params, expiration_block=exp // 256)  # "expired" long ago: cleanup would drop it
    with pytest.raises(InvalidRecipientRand):
        await o.pay(Gateway(gateway.key).pay(throwaway, 1, nonces=[999]), "m")
    await o.nonces.cleanup(chain.l1_block)  # the chain service's cleanup on the next block
    for _ in range(3):
        with pytest.raises(PaymentError):
            await o.pay(gateway.pay(params, nonces=list(range(10, 0, -1))), "m")
    assert await o.balances.balance(gateway.address, "m") == credited


async def test_params_quoted_for_a_cheap_model_cannot_fix_the_price_of_another(orch, chain) -> None:
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    cheap = Scope.of(33, "tiny-llm")
    params = await o.quote(gateway, Fraction(1), cheap)
    expensive = "33_meta-llama/Llama-3.1-405B"
    with pytest.raises(ParamsNotForThisJob, match="33_meta-llama/Llama-3.1-405B"):
        await o.pay(gateway.pay(params, 2), expensive, Scope.of(33, "meta-llama/Llama-3.1-405B"))
    await o.assert_untouched(gateway, expensive)
    # Nor the base (transcoding) price, nor the other way round.
    with pytest.raises(ParamsNotForThisJob):
        await o.pay(gateway.pay(params, 1), "session", Scope.base())
    base = await o.quote(gateway, Fraction(1))
    with pytest.raises(ParamsNotForThisJob):
        await o.pay(gateway.pay(base, 1), "33_tiny-llm", cheap)
    assert o.nonces.snapshot() == {}
    # What the quote covered is accepted.
    assert (await o.pay(gateway.pay(params, 1), "33_tiny-llm", cheap)).credited == 1
    assert await o.balances.fixed_price(gateway.address, "33_tiny-llm") == 1


async def test_a_restart_with_memory_stores_refuses_every_params_quoted_before(orch, chain) -> None:
    """go-livepeer's secret dies with its process; Baton's persists, so the nonce generation must not."""
    before = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await before.quote(gateway, Fraction(1))
    payment = gateway.pay(params, 50)
    assert (await before.pay(payment, "m")).credited == 50
    after = Orchestrator(orch, chain)  # the same secret, fresh memory stores
    for replay in (payment, gateway.pay(params, nonces=list(range(1, 51)))):
        with pytest.raises(TicketParamsExpired):
            await after.pay(replay, "m")
    await after.assert_untouched(gateway, "m")
    assert after.nonces.snapshot() == {}
    # A fresh quote after the restart works as usual.
    assert (await after.pay(gateway.pay(await after.quote(gateway, Fraction(1)), 1), "m")).credited == 1


async def test_params_of_an_older_seed_layout_are_answered_as_expired(orch, chain) -> None:
    """Params quoted before this encoding get the error gateways answer by refreshing, nothing else."""
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1))
    seed = number(params, "seed")
    old_style = forge(params, seed=(1_700_000_000 << 192) | (seed % 2**192))
    with pytest.raises(TicketParamsExpired):
        await o.pay(gateway.pay(old_style, 1), "m")
    await o.assert_untouched(gateway, "m")


async def test_a_secret_change_reads_as_expired_params_not_as_a_forged_rand(orch, chain) -> None:
    """A rotation, or replicas briefly holding different secret files: gateways refresh, not suspend us."""
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1))
    rotated = PaymentProcessor(
        PaymentValidator(orch, b"\x42" * 32, chain, o.nonces), o.balances, o.winners
    )
    with pytest.raises(TicketParamsExpired):
        await rotated.process(decode_payment(gateway.pay(params, 1).SerializeToString()), "m", Scope.base())
    await o.assert_untouched(gateway, "m")


def test_memory_stores_are_refused_on_chain() -> None:
    from baton_common.pm_nats import KvNonceStore

    stores = (MemoryNonceStore(), MemoryBalanceStore(), MemoryWinningTickets())
    require_durable("offchain", *stores)
    with pytest.raises(ConfigError, match="MemoryNonceStore keeps its state in one process"):
        require_durable("arbitrum-one-mainnet", *stores)
    assert KvNonceStore.durable


async def test_a_payment_without_tickets_names_a_sender_nobody_verified(orch, chain) -> None:
    o = Orchestrator(orch, chain)
    gateway = Gateway.random()
    params = await o.quote(gateway, Fraction(1))
    empty = await o.pay(gateway.pay(params, 0), "m")
    assert empty.sender == gateway.address and not empty.verified
    assert (await o.pay(gateway.pay(params, 1), "m")).verified
