"""The record a winning ticket leaves, from the moment it is received to its redemption result.

One record per ticket hash, in one store (the winners KV bucket): the
negotiator creates it pending, the chain service's redeemer settles it by a
compare-and-set update, and nothing ever deletes it. A replayed winner's
``create`` therefore fails whether the ticket is pending or long redeemed.
"""

from __future__ import annotations

import msgspec

from .ticket import SignedTicket

__all__ = ["WinnerPending", "WinnerRecord", "WinnerRedeemed", "WinnerRefused", "WinnerSettled", "settle"]


class WinnerPending(msgspec.Struct, frozen=True, tag="winner.pending.v1"):
    """Received and persisted; waiting for its params to expire and for redemption."""

    ticket: SignedTicket


class WinnerRedeemed(msgspec.Struct, frozen=True, tag="winner.redeemed.v1"):
    """Redeemed on chain: ``tx_hash`` is the receipt's transaction hash."""

    ticket: SignedTicket
    tx_hash: bytes
    at: float = 0.0
    amount: int = 0
    """Wei TicketBroker transferred (its WinningTicketTransfer event): below the face value when the sender's
    funds fell short; 0 when unknown (found by a used-ticket lookup, or recorded before this field)."""


class WinnerRefused(msgspec.Struct, frozen=True, tag="winner.refused.v1"):
    """Never to be redeemed (used ticket, expired, reverted...): ``code`` and ``reason`` say why."""

    ticket: SignedTicket
    code: str
    reason: str
    at: float = 0.0


WinnerSettled = WinnerRedeemed | WinnerRefused
WinnerRecord = WinnerPending | WinnerRedeemed | WinnerRefused


def settle(current: WinnerRecord, result: WinnerSettled) -> WinnerRecord:
    """The record after the redeemer reports ``result``: a settled record never changes."""
    if not isinstance(current, WinnerPending):
        return current
    if result.ticket.ticket_hash != current.ticket.ticket_hash:
        raise ValueError("the result is for another ticket")
    return result
