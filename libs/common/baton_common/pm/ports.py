"""What the payment core needs from outside, as small async Protocols.

The core does no I/O of its own. Chain data arrives through ``ChainData``
(the chain service's cache, reached over the bus); replay and balance state live
behind ``NonceStore`` and ``BalanceStore`` so that every negotiator replica shares
them (``baton_common.pm_nats`` implements both over a NATS KV bucket with
compare-and-set; ``baton_common.pm.memory`` implements them for one process).
Winning tickets are persisted through ``WinningTickets`` before their nonces are spent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Protocol

import msgspec

from .nonces import CreditEntry, NonceRecord, NonceVerdict
from .ticket import SignedTicket
from .winners import WinnerRecord, WinnerSettled

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

    async def ticket_validity_period(self) -> int:
        """TicketBroker's ``ticketValidityPeriod``: rounds after its creation round a ticket redeems."""
        ...


class NonceStore(Protocol):
    """The sender nonces seen per recipientRand, shared by every replica, with the credits they owe.

    The store has a *generation* (``recipient_rand.GENERATION_BYTES`` random
    bytes) that it makes whenever its state starts empty, kept where the records
    are so that it is lost exactly when they are. Rands are keyed by it
    (``recipient_rand.rand_key``), so params quoted before the state was lost
    never meet the empty state.
    """

    durable: bool
    """Shared by every replica and kept across restarts (required on-chain)."""

    async def generation(self) -> bytes:
        """The current generation (cached; made when the state is empty)."""
        ...

    async def update(
        self,
        key: str,
        expiration_block: int,
        generation: bytes,
        change: Callable[[NonceRecord], NonceRecord | None],
    ) -> NonceRecord:
        """Replace the record under ``key`` (the recipientRandHash, hex) by ``change(record)``, atomically.

        ``change`` gets a private copy of the current record, or
        ``NonceRecord(expiration_block)`` when there is none, and returns what to
        write, or None to write nothing. It may be called more than once (on a
        conflict, or when an ack was lost) and must depend only on its argument.
        Conflicts and timeouts are retried with backoff; writes to one key are
        serialized within the process. After the write (or none), the store
        confirms that it landed in ``generation``'s state and above the cleanup
        mark, else raises ``NonceStateChanged``: the record proves nothing.
        Returns the record as it stands.
        """
        ...

    async def cleanup(
        self,
        last_seen_block: int,
        complete: Callable[[list[CreditEntry]], Awaitable[None]] | None = None,
    ) -> int:
        """Forget the records whose ``expiration_block <= last_seen_block``; returns how many.

        ``nonces.may_forget`` is the rule. The mark goes up first, so a record a
        lagging replica re-creates below it is refused. Before a record the mark
        passes now is dropped, its journal entries still owed go to ``complete``
        (which applies them, once, to their balances); a record whose completion
        fails stays for the next cleanup. The chain service calls this on each new
        block, with a margin behind the last block. A store may also expire records
        by wall-clock time, only as a backstop far beyond ``max_params_age``.
        """
        ...


class BalanceEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One (sender, manifest) balance: credit in wei as an exact fraction, and the fixed price.

    ``credits`` maps the id of each journaled credit applied here, and not yet
    gone from its nonce record, to that record's key: while the record may still
    offer it, the balance must recognise it. ``ops`` holds the ids of debits in
    flight or interrupted (when written): a retried write recognises its own.
    Both are dropped once settled, so they stay small.
    """

    amount_num: int = 0
    amount_den: int = 1
    price_num: int | None = None
    price_den: int | None = None
    updated_at: float = 0.0
    credits: dict[str, str] = msgspec.field(default_factory=dict)
    ops: dict[str, float] = msgspec.field(default_factory=dict)

    @property
    def amount(self) -> Fraction:
        return Fraction(self.amount_num, self.amount_den)

    @property
    def fixed_price(self) -> Fraction | None:
        if self.price_num is None or self.price_den is None:
            return None
        return Fraction(self.price_num, self.price_den)


class BalanceStore(Protocol):
    """Balances by key, shared by every replica.

    ``expires_idle`` is True for a store that forgets an entry idle for the
    balance TTL by itself, on its server's clock (the NATS bucket's TTL); then
    ``Balances`` does not judge idleness by this replica's clock.
    """

    expires_idle: bool
    durable: bool
    """Shared by every replica and kept across restarts (required on-chain)."""

    async def get(self, key: str) -> BalanceEntry | None: ...

    async def update(
        self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry | None]
    ) -> BalanceEntry | None:
        """Replace the entry with ``change(current)`` atomically (None: leave it as it is).

        Conflicts and timeouts are retried with backoff, writes to one key
        serialized within the process; ``change`` may run more than once.
        Returns the entry as it stands.
        """
        ...


class WinningTickets(Protocol):
    """Where winning tickets are persisted for the redeemer: one record per ticket hash, for good.

    A record is pending until the redeemer settles it (redeemed, or refused with
    its reason); a settled record is never removed or overwritten, so a replayed
    winner can never be stored, or redeemed, again.
    """

    durable: bool

    async def store(self, ticket: SignedTicket) -> bool:
        """Persist ``ticket`` as pending; False if a record with its hash exists (pending or settled)."""
        ...

    async def pending(self) -> list[SignedTicket]:
        """Every pending ticket, oldest first."""
        ...

    async def settle(self, ticket_hash: bytes, result: WinnerSettled) -> WinnerRecord:
        """Record the redeemer's result for a pending ticket; a settled record stays as it is.

        Returns the record as it stands (the earlier result, if it was settled already).
        """
        ...

    async def record(self, ticket_hash: bytes) -> WinnerRecord | None: ...
