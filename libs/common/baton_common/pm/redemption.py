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
    "TICKET_VALIDITY_PERIOD",
    "RedemptionDeferred",
    "RedemptionGate",
    "redeem_args",
]

TICKET_VALIDITY_PERIOD = 2
"""Rounds after its creation round that TicketBroker still redeems a ticket."""


class RedemptionGate:
    """Decides whether a queued winner is redeemable at the current block and round."""

    def __init__(self, issuer: TicketParamsIssuer, chain: ChainData, redeem_gas: int) -> None:
        self._issuer = issuer
        self._chain = chain
        self._redeem_gas = redeem_gas

    @staticmethod
    def in_window(ticket: SignedTicket, current_round: int) -> bool:
        """Whether the ticket is recent enough to select (creationRound >= round - 2)."""
        return ticket.ticket.creation_round >= current_round - TICKET_VALIDITY_PERIOD

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


def redeem_args(ticket: SignedTicket) -> tuple[tuple, bytes, int]:
    """``redeemWinningTicket((recipient, sender, faceValue, winProb, senderNonce,
    recipientRandHash, auxData), sig, recipientRand)`` arguments, ready to ABI-encode."""
    t = ticket.ticket
    return (
        (t.recipient, t.sender, t.face_value, t.win_prob, t.sender_nonce, t.recipient_rand_hash, t.aux_data()),
        ticket.sig,
        ticket.recipient_rand,
    )
