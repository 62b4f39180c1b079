"""When a stored winning ticket may be redeemed, and what the call carries (spec 3.7).

The chain service owns the queue and the transaction; these are the pure rules
it applies first, so a redemption is only sent when it can pay for itself and
never puts a recipientRand on chain while its params are still live.
"""

from __future__ import annotations

from .errors import RedemptionDeferred
from .params import TicketParamsIssuer
from .ports import ChainData
from .ticket import SignedTicket

__all__ = [
    "RedemptionDeferred",
    "RedemptionGate",
    "redeem_args",
]


class RedemptionGate:
    """Decides whether a queued winner is redeemable at the current block and round."""

    def __init__(self, issuer: TicketParamsIssuer, chain: ChainData, redeem_gas: int, *,
                 wait_for_face_value: bool = False) -> None:
        self._issuer = issuer
        self._chain = chain
        self._redeem_gas = redeem_gas
        self._wait_for_face_value = wait_for_face_value
        """Defer a ticket the sender's funds would pay only in part while it stays redeemable past the next
        round: TicketBroker pays deposit plus this round's reserve allocation, and a new round brings a
        fresh allocation (or the sender may fund again). In its last round it is redeemed for what is there."""

    @staticmethod
    def in_window(ticket: SignedTicket, current_round: int, validity_period: int) -> bool:
        """Whether TicketBroker still redeems it: creationRound + ticketValidityPeriod > currentRound.

        ``validity_period`` is the contract's ``ticketValidityPeriod`` (``ChainData.ticket_validity_period``).
        """
        return ticket.ticket.creation_round + validity_period > current_round

    async def redeemable_round(self, ticket: SignedTicket) -> bool:
        """``in_window`` against the chain data's current round and validity period."""
        return self.in_window(
            ticket, await self._chain.last_initialized_round(), await self._chain.ticket_validity_period()
        )

    @staticmethod
    def params_expired(ticket: SignedTicket, last_seen_l1_block: int) -> bool:
        """Whether its params expired, so revealing the rand can no longer help the sender."""
        return ticket.expiration_block <= last_seen_l1_block

    async def check(self, ticket: SignedTicket) -> None:
        """Raise RedemptionDeferred unless the ticket should be redeemed now."""
        if not self.params_expired(ticket, await self._chain.last_seen_l1_block()):
            raise RedemptionDeferred("ticket params have not expired yet")
        sender = ticket.ticket.sender
        tx_cost = self._redeem_gas * await self._chain.gas_price()
        info = await self._chain.sender_info(sender)
        pending = await self._chain.pending_redemptions(sender)
        available = await self._issuer.reserve_alloc(sender) + info.deposit - pending
        if available <= tx_cost:
            raise RedemptionDeferred("insufficient sender funds for redeem tx cost")
        if ticket.ticket.face_value <= tx_cost:
            raise RedemptionDeferred("insufficient ticket face value for redeem tx cost")
        if self._wait_for_face_value and available < ticket.ticket.face_value:
            next_round = await self._chain.last_initialized_round() + 1
            if self.in_window(ticket, next_round, await self._chain.ticket_validity_period()):
                raise RedemptionDeferred("sender funds below the face value; waiting for the next round's reserve "
                                         "allocation or a deposit")


def redeem_args(ticket: SignedTicket) -> tuple[tuple, bytes, int]:
    """``redeemWinningTicket((recipient, sender, faceValue, winProb, senderNonce,
    recipientRandHash, auxData), sig, recipientRand)`` arguments, ready to ABI-encode."""
    t = ticket.ticket
    return (
        (t.recipient, t.sender, t.face_value, t.win_prob, t.sender_nonce, t.recipient_rand_hash, t.aux_data()),
        ticket.sig,
        ticket.recipient_rand,
    )
