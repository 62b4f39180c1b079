"""Tickets, their parameters, the ticket hash, the win check and expected value.

Spec/livepeer-wire.md section 3.2. Wei amounts and probabilities are Python
ints (uint256 on chain); addresses are 20-byte ``bytes``; EV is an exact
``fractions.Fraction``, never a float.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import msgspec

from .encoding import UINT256_MAX, ZERO_HASH, keccak256, uint256

__all__ = [
    "MAX_WIN_PROB",
    "ExpirationParams",
    "SignedTicket",
    "Ticket",
    "TicketParams",
    "ticket_ev",
    "is_winning",
    "nonce_hasher",
]

MAX_WIN_PROB = UINT256_MAX
"""A ticket with this win probability always wins."""


def ticket_ev(face_value: int, win_prob: int) -> Fraction:
    """Expected value of one ticket: faceValue * winProb / (2**256 - 1)."""
    return Fraction(face_value * win_prob, MAX_WIN_PROB)


def is_winning(sig: bytes, recipient_rand: int, win_prob: int) -> bool:
    """A ticket wins iff uint256(keccak256(sig || uint256(recipientRand))) < winProb."""
    return int.from_bytes(keccak256(sig + uint256(recipient_rand)), "big") < win_prob


class ExpirationParams(msgspec.Struct, frozen=True, gc=False):
    """The round a ticket is created in and that round's L1 block hash (the aux data)."""

    creation_round: int = 0
    creation_round_block_hash: bytes = ZERO_HASH

    def aux_data(self) -> bytes:
        """leftpad32(creationRound) || blockHash, or empty when both are zero (64 or 0 bytes)."""
        if self.creation_round == 0 and self.creation_round_block_hash == ZERO_HASH:
            return b""
        return uint256(self.creation_round) + self.creation_round_block_hash


class TicketParams(msgspec.Struct, frozen=True, gc=False):
    """What the orchestrator asks a gateway's tickets to carry (TicketParams on the wire)."""

    recipient: bytes
    face_value: int
    win_prob: int
    recipient_rand_hash: bytes
    seed: int
    expiration_block: int
    expiration_params: ExpirationParams | None = None

    def ev(self) -> Fraction:
        return ticket_ev(self.face_value, self.win_prob)


class Ticket(msgspec.Struct, frozen=True, gc=False):
    """One lottery ticket, with exactly the fields TicketBroker hashes."""

    recipient: bytes
    sender: bytes
    face_value: int
    win_prob: int
    sender_nonce: int
    recipient_rand_hash: bytes
    creation_round: int = 0
    creation_round_block_hash: bytes = ZERO_HASH

    @property
    def expiration_params(self) -> ExpirationParams:
        return ExpirationParams(self.creation_round, self.creation_round_block_hash)

    def aux_data(self) -> bytes:
        return self.expiration_params.aux_data()

    def packed(self) -> bytes:
        """Tight packing as Solidity's abi.encodePacked: 168 bytes, or 232 with aux data."""
        return b"".join(
            (
                self.recipient,
                self.sender,
                uint256(self.face_value),
                uint256(self.win_prob),
                uint256(self.sender_nonce),
                self.recipient_rand_hash,
                self.aux_data(),
            )
        )

    def hash(self) -> bytes:
        """keccak256 of the tight packing: what the sender signs (personal-sign, no extra hash)."""
        return keccak256(self.packed())

    def ev(self) -> Fraction:
        return ticket_ev(self.face_value, self.win_prob)


def nonce_hasher(template: Ticket) -> Callable[[int], bytes]:
    """``n -> template-with-sender_nonce-n .hash()``, packing the shared fields once.

    A payment's tickets differ only in their nonce; this keeps batch hashing cheap.
    """
    packed = template.packed()
    head, tail = packed[:104], packed[136:]
    return lambda nonce: keccak256(head + uint256(nonce) + tail)


class SignedTicket(msgspec.Struct, frozen=True, gc=False):
    """A winning ticket ready to redeem: the ticket, its signature and the revealed rand.

    ``expiration_block`` is the params' expiration block: redeem only once the
    L1 chain has reached it, so the rand is never revealed while its params live.
    ``ticket_hash`` identifies the ticket (TicketBroker's ``usedTickets`` key).
    """

    ticket: Ticket
    sig: bytes
    recipient_rand: int
    expiration_block: int
    seed: int = 0

    @property
    def ticket_hash(self) -> bytes:
        return self.ticket.hash()
