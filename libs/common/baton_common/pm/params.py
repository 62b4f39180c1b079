"""Quoting TicketParams for a gateway: face value, win probability, expiration.

Spec/livepeer-wire.md section 3.4. Everything chain-side (rounds, block
hashes, the sender's deposit and reserve, the pool size, gas price, pending
redemptions) comes through the ``ChainData`` port.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import msgspec

from .encoding import ZERO_HASH
from .errors import InsufficientSenderReserve
from .ports import ChainData
from .recipient_rand import new_seed, recipient_rand, recipient_rand_hash
from .ticket import MAX_WIN_PROB, ExpirationParams, TicketParams

__all__ = [
    "AVG_GAS_PRICE",
    "DEFAULT_TICKET_EV",
    "PARAMS_EXPIRATION_BLOCKS",
    "REDEEM_GAS",
    "REDEEM_GAS_ARBITRUM",
    "ParamsPolicy",
    "TicketParamsIssuer",
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


class TicketParamsIssuer:
    """Quotes ticket params; holds nothing per quote (the rand is re-derived on receipt)."""

    def __init__(
        self,
        policy: ParamsPolicy,
        secret: bytes,
        chain: ChainData,
        *,
        seeds: Callable[[], int] = new_seed,
    ) -> None:
        self._policy = policy
        self._secret = secret
        self._chain = chain
        self._seeds = seeds

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
        """The last initialized round and its block hash, or the round before if that hash is zero."""
        round_ = await self._chain.last_initialized_round()
        block_hash = await self._chain.round_block_hash(round_)
        if block_hash == ZERO_HASH:
            round_ -= 1
            block_hash = await self._chain.round_block_hash(round_)
        return ExpirationParams(round_, block_hash)

    async def quote(self, sender: bytes, price: Fraction) -> TicketParams:
        """Fresh ticket params for ``sender`` at ``price`` (wei per unit, reduced, >= 0)."""
        if price < 0:
            raise ValueError(f"price must not be negative, got {price}")
        face_value = await self.face_value(sender) if price > 0 else 0
        win_prob = win_prob_for(face_value, self._policy.ticket_ev)
        expiration_block = await self._chain.last_seen_l1_block() + PARAMS_EXPIRATION_BLOCKS
        expiration_params = await self.expiration_params()
        seed = self._seeds()
        rand = recipient_rand(
            self._secret,
            seed=seed,
            sender=sender,
            face_value=face_value,
            win_prob=win_prob,
            expiration_block=expiration_block,
            price=price,
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
