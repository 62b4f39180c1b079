"""A gateway's payment, decoded from the wire (``wire.py``) into plain values."""

from __future__ import annotations

from fractions import Fraction

import msgspec

from .errors import InvalidExpectedPrice
from .ticket import ExpirationParams, Ticket, TicketParams

__all__ = ["Payment", "PriceInfo", "SenderParams"]


class PriceInfo(msgspec.Struct, frozen=True, gc=False):
    """Wei per ``pixels_per_unit`` units, as the gateway echoes it back (both >= 0)."""

    price_per_unit: int
    pixels_per_unit: int

    def fraction(self) -> Fraction:
        """The reduced price per unit; raises InvalidExpectedPrice if pixelsPerUnit is 0."""
        if self.pixels_per_unit == 0:
            raise InvalidExpectedPrice("pixels per unit is 0")
        return Fraction(self.price_per_unit, self.pixels_per_unit)


class SenderParams(msgspec.Struct, frozen=True, gc=False):
    """One ticket of a batch: its nonce and the sender's signature over its hash."""

    sender_nonce: int
    sig: bytes


class Payment(msgspec.Struct, frozen=True, gc=False):
    """A batch of tickets sharing one set of params (the ``Payment`` message).

    ``sender`` is empty when the message carried none. ``params.expiration_params``
    is ignored here: the batch's own ``expiration_params`` is what tickets carry.
    """

    sender: bytes = b""
    params: TicketParams | None = None
    expiration_params: ExpirationParams | None = None
    tickets: tuple[SenderParams, ...] = ()
    expected_price: PriceInfo | None = None

    def ticket(self, sender_params: SenderParams) -> Ticket:
        """The full ticket one entry of the batch stands for (params must be present)."""
        params = self.params
        if params is None:
            raise ValueError("a payment without ticket params holds no tickets")
        expiration = self.expiration_params or ExpirationParams()
        return Ticket(
            recipient=params.recipient,
            sender=self.sender,
            face_value=params.face_value,
            win_prob=params.win_prob,
            sender_nonce=sender_params.sender_nonce,
            recipient_rand_hash=params.recipient_rand_hash,
            creation_round=expiration.creation_round,
            creation_round_block_hash=expiration.creation_round_block_hash,
        )
