"""What validating a payment yields: the checked payment, its validation, and the commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .errors import PaymentError
from .nonces import CreditEntry
from .ticket import SignedTicket

__all__ = ["CheckedPayment", "Commit", "Validation"]


@dataclass(frozen=True, slots=True)
class CheckedPayment:
    """A payment after ``check``: nothing is spent yet.

    ``winners`` are every well-signed winning ticket (replays included): persist
    them all before ``commit``. ``error`` is a fatal error: the batch is refused
    and there is nothing to commit. The other fields are what ``commit`` needs.
    """

    sender: bytes
    price: Fraction | None = None
    received: int = 0
    winners: tuple[SignedTicket, ...] = ()
    error: PaymentError | None = None
    nonce_key: str = ""
    expiration_block: int = 0
    ticket_ev: Fraction = Fraction(0)
    nonces: tuple[int, ...] = ()
    sigs: tuple[bytes, ...] = ()
    well_signed: tuple[bool, ...] = ()
    expired: bool = False
    generation: bytes = b""


@dataclass(frozen=True, slots=True)
class Validation:
    """What one payment is worth.

    ``price`` is the session price to fix for (sender, manifest) if none is
    fixed yet, or None to fix nothing: only a batch whose recipientRand checked
    out proves the price, so a payment without tickets or failing a fatal check
    fixes none. ``ev`` is the exact wei to credit for the ``credited`` tickets.
    ``winners`` were to be persisted before ``commit``. ``error`` is the first
    ticket error (fatal or not): the tickets from it on were not credited, and
    the gateway must get its text. ``retried``: this exact payment was committed
    before (a retry after a lost ack or a failed credit, or a replay of it): its
    journaled credit is handed back, and the balance applies it only once.
    """

    sender: bytes
    price: Fraction | None = None
    ev: Fraction = Fraction(0)
    received: int = 0
    credited: int = 0
    winners: tuple[SignedTicket, ...] = field(default=())
    error: PaymentError | None = None
    retried: bool = False
    """The same payment was committed before: this is its journaled credit, which a balance applies once."""
    verified: bool = False
    """At least one ticket's signature recovered to ``sender``: only then is ``sender`` proven.

    A payment without tickets names a sender nobody checked: never debit or
    credit on it, nor count it under the sender's label."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What ``commit`` decided: the payment's ``validation``, and the ``credit`` to apply (or None).

    ``credit`` is this payment's (None if it spent nothing); ``owed`` are the
    credits earlier payments under the same params journaled and may not have
    applied (a crash, a timeout): the caller applies every one (each balance
    applies a credit once), then has the record drop them.
    """

    validation: Validation
    credit: CreditEntry | None = None
    owed: tuple[CreditEntry, ...] = ()
    """Other journal entries of the record, whose credit may not have reached its balance yet."""
