"""What the payment core needs from outside, as small async Protocols.

The core does no I/O of its own. Chain data arrives through ``ChainData``
(the chain service's cache, reached over the bus); replay and balance state live
behind ``NonceStore`` and ``BalanceStore`` so that every negotiator replica shares
them (``baton_common.pm_nats`` implements both over a NATS KV bucket with
compare-and-set; ``baton_common.pm.memory`` implements them for one process).
Winning tickets are persisted through ``WinningTickets`` before their nonces are spent.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Protocol

import msgspec

from .ticket import SignedTicket

__all__ = [
    "BalanceEntry",
    "BalanceStore",
    "ChainData",
    "NonceStore",
    "NonceVerdict",
    "SenderInfo",
    "WinningTickets",
]


class SenderInfo(msgspec.Struct, frozen=True):
    """A gateway's TicketBroker state (getSenderInfo), in wei."""

    deposit: int = 0
    withdraw_round: int = 0
    reserve_funds_remaining: int = 0
    reserve_claimed_in_current_round: int = 0


class ChainData(Protocol):
    """Chain facts, as last seen by the chain service."""

    async def last_initialized_round(self) -> int: ...

    async def round_block_hash(self, round_: int) -> bytes:
        """The L1 block hash RoundsManager stored for ``round_`` (32 zero bytes if none)."""
        ...

    async def last_seen_l1_block(self) -> int:
        """The latest L1 block number (as reported on Arbitrum)."""
        ...

    async def sender_info(self, sender: bytes) -> SenderInfo: ...

    async def claimed_reserve(self, sender: bytes, claimant: bytes) -> int:
        """How much of ``sender``'s reserve ``claimant`` has claimed this round."""
        ...

    async def active_pool_size(self) -> int: ...

    async def is_active_orchestrator(self, address: bytes, round_: int) -> bool:
        """activationRound <= round_ < deactivationRound."""
        ...

    async def gas_price(self) -> int:
        """The suggested gas price in wei."""
        ...

    async def pending_redemptions(self, sender: bytes) -> int:
        """Face value of this orchestrator's in-flight redemptions against ``sender``."""
        ...


class NonceVerdict(enum.Enum):
    ACCEPTED = "accepted"
    SEEN = "seen"
    FULL = "full"


class NonceStore(Protocol):
    """The sender nonces seen per recipientRand, shared by every replica."""

    async def add(self, key: str, nonces: Sequence[int], expiration_block: int) -> list[NonceVerdict]:
        """Record ``nonces`` in order under ``key`` (the recipientRandHash, hex), atomically.

        Per nonce: SEEN if it is already recorded (an earlier one in the same call
        counts), FULL if ``max_nonces`` are already recorded, else ACCEPTED and
        recorded. ``expiration_block`` is kept with the record for ``cleanup``.
        """
        ...

    async def cleanup(self, last_seen_block: int) -> int:
        """Drop the records whose ``expiration_block <= last_seen_block``; returns how many.

        ``nonces.may_forget`` is the rule. The chain service calls this on each
        new L1 block. A store may also expire records by wall-clock time, but
        only as a backstop far beyond the validator's ``max_params_age``.
        """
        ...


class BalanceEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One (sender, manifest) balance: credit in wei as an exact fraction, and the fixed price."""

    amount_num: int = 0
    amount_den: int = 1
    price_num: int | None = None
    price_den: int | None = None
    updated_at: float = 0.0

    @property
    def amount(self) -> Fraction:
        return Fraction(self.amount_num, self.amount_den)

    @property
    def fixed_price(self) -> Fraction | None:
        if self.price_num is None or self.price_den is None:
            return None
        return Fraction(self.price_num, self.price_den)


class BalanceStore(Protocol):
    """Balances by key, shared by every replica."""

    async def get(self, key: str) -> BalanceEntry | None: ...

    async def update(
        self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry]
    ) -> BalanceEntry:
        """Replace the entry with ``change(current)`` atomically (retrying on conflict)."""
        ...


class WinningTickets(Protocol):
    """Where winning tickets are persisted for the redeemer."""

    async def store(self, ticket: SignedTicket) -> bool:
        """Persist ``ticket``; False if a ticket with the same hash is already stored."""
        ...
