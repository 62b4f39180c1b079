"""Quoting TicketParams for a gateway: face value, win probability, expiration.

Spec/livepeer-wire.md section 3.4. Everything chain-side (rounds, block
hashes, the sender's deposit and reserve, the pool size, gas price, pending
redemptions) comes through the ``ChainData`` port.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction

import msgspec

from .encoding import ZERO_HASH
from .errors import InsufficientSenderReserve, NoRoundBlockHash
from .payment import PriceInfo
from .ports import ChainData, NonceStore
from .recipient_rand import RandKeys, new_seed, recipient_rand, recipient_rand_hash
from .scope import Scope
from .ticket import MAX_WIN_PROB, ExpirationParams, TicketParams

__all__ = [
    "AVG_GAS_PRICE",
    "DEFAULT_TICKET_EV",
    "INT64_MAX",
    "PARAMS_EXPIRATION_BLOCKS",
    "REDEEM_GAS",
    "REDEEM_GAS_ARBITRUM",
    "ParamsPolicy",
    "TicketParamsIssuer",
    "price_info_for",
    "win_prob_for",
]

DEFAULT_TICKET_EV = 8_000_000_000
"""go-livepeer's ``-ticketEV`` default, in wei."""
REDEEM_GAS = 350_000
REDEEM_GAS_ARBITRUM = 1_200_000
TX_COST_MULTIPLIER = 100
EV_MULTIPLIER = 100
AVG_GAS_PRICE = 3_000_000_000
"""go-livepeer's hard-coded 3 gwei: a face value that covers redeemGas at this price is accepted."""
PARAMS_EXPIRATION_BLOCKS = 40
MIN_DEPOSIT_PENDING_RATIO = 3
INT64_MAX = 2**63 - 1
"""PriceInfo's fields are int64 on the wire."""


class ParamsPolicy(msgspec.Struct, frozen=True):
    """The orchestrator's ticket settings."""

    recipient: bytes
    """The orchestrator's ETH address (``-ethOrchAddr``): tickets are paid to it."""
    ticket_ev: int = DEFAULT_TICKET_EV
    """Expected value of one ticket in wei (``-ticketEV``)."""
    redeem_gas: int = REDEEM_GAS
    """Gas one redemption costs: 1,200,000 on Arbitrum networks, 350,000 otherwise."""
    max_face_value: int = 0
    """Upper bound on the face value in wei (``-maxFaceValue``); 0 means none."""
    min_gas_price: int = 0
    """Floor under the suggested gas price in wei (``-minGasPrice``)."""


def win_prob_for(face_value: int, ticket_ev: int) -> int:
    """winProb = 2**256-1 if faceValue = EV, else EV * ceil((2**256-1) / faceValue); 0 if fv = 0."""
    if face_value == 0:
        return 0
    if face_value == ticket_ev:
        return MAX_WIN_PROB
    return ticket_ev * -(-MAX_WIN_PROB // face_value)


def price_info_for(price: Fraction | int) -> PriceInfo:
    """The ``PriceInfo`` to send for ``price`` (wei per unit, >= 0), as go-livepeer's PriceInfoForCaps.

    The reduced num/den when both fit in int64, else floor(price)/1 (spec
    section 4); ValueError if even floor(price) does not fit, or price < 0.
    The gateway echoes this pair, and the rand is derived from it, so quote the
    price exactly as it goes out (``TicketParamsIssuer.quote`` does).
    """
    price = Fraction(price)
    if price < 0:
        raise ValueError(f"price must not be negative, got {price}")
    if price.numerator <= INT64_MAX and price.denominator <= INT64_MAX:
        return PriceInfo(price.numerator, price.denominator)
    whole = math.floor(price)
    if whole > INT64_MAX:
        raise ValueError(f"price {whole} wei per unit does not fit in an int64 PriceInfo")
    return PriceInfo(whole, 1)


def _sent_price(price: PriceInfo | Fraction | int) -> Fraction:
    """The price a gateway will echo for ``price``, as the reduced fraction the rand commits to."""
    if not isinstance(price, PriceInfo):
        price = price_info_for(price)
    if not 0 <= price.price_per_unit <= INT64_MAX:
        raise ValueError(f"pricePerUnit must be an int64 >= 0, got {price.price_per_unit}")
    if not 1 <= price.pixels_per_unit <= INT64_MAX:
        raise ValueError(f"pixelsPerUnit must be an int64 >= 1, got {price.pixels_per_unit}")
    return price.fraction()


class TicketParamsIssuer:
    """Quotes ticket params; holds nothing per quote (the rand is re-derived on receipt).

    ``nonces`` is the nonce store payments will be checked against: its
    generation keys the rands and rides in each seed (``recipient_rand``).
    ``clock`` gives the issue time each seed carries; ``seed_random`` its
    random bits (64 from the OS by default; tests fix them).
    """

    def __init__(
        self,
        policy: ParamsPolicy,
        secret: bytes,
        chain: ChainData,
        nonces: NonceStore,
        *,
        clock: Callable[[], float] = time.time,
        seed_random: Callable[[], int] | None = None,
    ) -> None:
        self._policy = policy
        self._seed_random = seed_random
        self._keys = RandKeys(secret)
        self._chain = chain
        self._nonces = nonces
        self._clock = clock

    async def tx_cost(self) -> int:
        gas_price = max(await self._chain.gas_price() or 0, self._policy.min_gas_price)
        return self._policy.redeem_gas * gas_price

    async def reserve_alloc(self, sender: bytes) -> int:
        """This orchestrator's share of ``sender``'s reserve this round."""
        info = await self._chain.sender_info(sender)
        pool_size = await self._chain.active_pool_size()
        if pool_size == 0:
            return 0
        claimed = await self._chain.claimed_reserve(sender, self._policy.recipient)
        reserve = info.reserve_funds_remaining + info.reserve_claimed_in_current_round
        return reserve // pool_size - claimed

    async def max_float(self, sender: bytes) -> int:
        """reserveAlloc - pending, where pending is ignored once deposit/pending >= 3."""
        alloc = await self.reserve_alloc(sender)
        pending = await self._chain.pending_redemptions(sender)
        if pending > 0:
            deposit = (await self._chain.sender_info(sender)).deposit
            if deposit >= MIN_DEPOSIT_PENDING_RATIO * pending:
                return alloc
        return alloc - pending

    async def face_value(self, sender: bytes) -> int:
        """100 x txCost (or 100 x EV if that is below EV), capped; raises InsufficientSenderReserve."""
        ev = self._policy.ticket_ev
        tx_cost = await self.tx_cost()
        face_value = TX_COST_MULTIPLIER * tx_cost
        if face_value < ev:
            face_value = EV_MULTIPLIER * ev
        face_value = min(face_value, await self.max_float(sender))
        if self._policy.max_face_value > 0:
            face_value = min(face_value, self._policy.max_face_value)
        if face_value < ev:
            raise InsufficientSenderReserve()
        if face_value < tx_cost and face_value < self._policy.redeem_gas * AVG_GAS_PRICE:
            raise InsufficientSenderReserve()
        return face_value

    async def tx_cost_multiplier(self, sender: bytes) -> Fraction:
        """faceValue / txCost, for ``-autoAdjustPrice`` (0 when gas is free)."""
        face_value = await self.face_value(sender)
        tx_cost = await self.tx_cost()
        return Fraction(face_value, tx_cost) if tx_cost > 0 else Fraction(0)

    async def expiration_params(self) -> ExpirationParams:
        """The last initialized round and its block hash, or the round before if that hash is zero.

        Raises NoRoundBlockHash when both are zero: tickets carrying either could never be redeemed.
        """
        last = await self._chain.last_initialized_round()
        for round_ in (last, last - 1):
            block_hash = await self._chain.round_block_hash(round_)
            if block_hash != ZERO_HASH:
                return ExpirationParams(round_, block_hash)
        raise NoRoundBlockHash(last)

    async def quote(
        self, sender: bytes, price: PriceInfo | Fraction | int, scope: Scope | None = None
    ) -> TicketParams:
        """Fresh ticket params for ``sender`` at ``price``: the PriceInfo to send, or wei per unit.

        ``scope`` is what the price covers: the (capability, model) pairs whose
        prices made it, or the base price (the default). Payments under these
        params are accepted only for that scope. A Fraction price is first
        converted with ``price_info_for``; send that same PriceInfo to the
        gateway, since the rand commits to what it echoes. Raises ValueError for
        a price that cannot be sent (negative, beyond int64), QuoteError
        subclasses when no redeemable params can be quoted now.
        """
        sent = _sent_price(price)
        expiration_params = await self.expiration_params()
        face_value = await self.face_value(sender) if sent > 0 else 0
        win_prob = win_prob_for(face_value, self._policy.ticket_ev)
        expiration_block = await self._chain.last_seen_l1_block() + PARAMS_EXPIRATION_BLOCKS
        generation = await self._nonces.generation()
        seed = new_seed(
            issued_at=int(self._clock()),
            tag=self._keys.tag(generation),
            scope=scope or Scope.base(),
            random=None if self._seed_random is None else self._seed_random(),
        )
        rand = recipient_rand(
            self._keys(generation),
            seed=seed,
            sender=sender,
            face_value=face_value,
            win_prob=win_prob,
            expiration_block=expiration_block,
            price=sent,
            expiration_params=expiration_params,
        )
        return TicketParams(
            recipient=self._policy.recipient,
            face_value=face_value,
            win_prob=win_prob,
            recipient_rand_hash=recipient_rand_hash(rand),
            seed=seed,
            expiration_block=expiration_block,
            expiration_params=expiration_params,
        )
