"""The nonce rules every NonceStore applies, and the credit journal a record carries.

No nonce twice, at most 600 per recipientRand (``record_nonces``), and a record
is forgotten by L1 block, never by wall-clock time (``may_forget``), as
go-livepeer's ``senderNoncesCleanupLoop`` does: a replay is refused by its
nonce record until the chain has passed its params' expiration block, and by
the expiry check from then on, so one of the two always stands.

Spending nonces and crediting the gateway touch two keys (the nonce record and
the balance), which no single compare-and-set covers. So the write that spends
a payment's nonces also records, in the same record, the credit it owes
(``CreditEntry``, a journal entry keyed by what was spent: ``credit_id``). The
nonce record is the authority on what is still owed: an entry stays in it until
its credit has reached the balance, and is then removed. The balance applies a
credit at most once, by its id, and keeps that id until the entry is gone from
the record. A credit interrupted between the writes (a crash, a lost ack, a
balance store that timed out, a cancelled request) is completed by whoever
meets the entry next: the same request retrying, the next payment under the
same ticket params on any replica, or the cleanup that forgets the record.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from hashlib import sha256

import msgspec

__all__ = [
    "MAX_SENDER_NONCES",
    "CreditEntry",
    "NonceRecord",
    "NonceVerdict",
    "StateMarker",
    "credit_id_for",
    "may_forget",
    "record_nonces",
]

MAX_SENDER_NONCES = 600
"""Nonces accepted per recipientRand; gateways refresh their params well before."""

class NonceVerdict(enum.Enum):
    ACCEPTED = "accepted"
    SEEN = "seen"
    FULL = "full"


class CreditEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """A credit owed for nonces spent: written with the nonces, applied to ``balance`` once."""

    id: str
    """``credit_id_for(recipientRandHash, tickets)``: the payment whose nonces were spent."""
    balance: str
    """The balance key (``balances.balance_key``) the credit goes to."""
    amount_num: int = 0
    amount_den: int = 1
    price_num: int | None = None
    """The session price the payment proved, fixed if the balance has none yet."""
    price_den: int | None = None
    received: int = 0
    credited: int = 0
    error: str | None = None
    """The text of the payment's first ticket error, answered again on a retry."""
    nonce_key: str = ""
    """The record (recipientRandHash, hex) the entry is journaled in."""
    at: float = 0.0
    """When it was journaled (the writer's clock): for people, never for a decision."""


class NonceRecord(msgspec.Struct):
    """The nonces seen under one recipientRandHash, when its params expire, and the credits journaled."""

    expiration_block: int
    nonces: list[int] = msgspec.field(default_factory=list)
    credits: dict[str, CreditEntry] = msgspec.field(default_factory=dict)
    """The journal: credits owed for nonces spent and not yet known to have reached their balance."""
    generation: str = ""
    """The generation (hex) of the state the record was created in."""

    def journaled(self, credit_id: str) -> CreditEntry | None:
        return self.credits.get(credit_id)


class StateMarker(msgspec.Struct, frozen=True):
    """The nonce state's identity, kept beside the records: lost exactly when they are.

    ``generation`` (hex) is made when the state starts empty and keys every rand
    quoted against it (``recipient_rand.rand_key``). ``cleanup_block`` is the
    highest block a cleanup has forgotten records up to: a record newly created
    at or below it may be one a cleanup already dropped, so it proves nothing.
    """

    generation: str
    cleanup_block: int = 0


def credit_id_for(nonce_key: str, tickets: Sequence[tuple[int, bytes]]) -> str:
    """The id of the credit for a payment's ``(nonce, sig)`` pairs, in order, under ``nonce_key``.

    Only the very same payment (the same tickets, signatures included) maps to
    the same id: that is what a retry resends.
    """
    h = sha256(b"baton/credit/v1\x00" + nonce_key.encode())
    for nonce, sig in tickets:
        h.update(nonce.to_bytes(32, "big"))
        h.update(len(sig).to_bytes(2, "big"))
        h.update(sig)
    return h.hexdigest()[:32]


def record_nonces(
    record: NonceRecord, nonces: Sequence[int], limit: int = MAX_SENDER_NONCES
) -> list[NonceVerdict]:
    """Apply ``nonces`` to ``record`` in order (mutating it); the rule every NonceStore follows."""
    seen = set(record.nonces)
    verdicts = []
    for nonce in nonces:
        if nonce in seen:
            verdicts.append(NonceVerdict.SEEN)
        elif len(seen) >= limit:
            verdicts.append(NonceVerdict.FULL)
        else:
            seen.add(nonce)
            record.nonces.append(nonce)
            verdicts.append(NonceVerdict.ACCEPTED)
    return verdicts


def may_forget(record: NonceRecord, last_seen_block: int) -> bool:
    """Whether ``record`` may be dropped: its params expired at or before ``last_seen_block``.

    From that block on the validator refuses the params as ``TicketParams
    expired``, so the record no longer guards anything. Pass a block that every
    replica's ``ChainData`` has already seen: a replica whose view lags behind
    would still take the params for live.
    """
    return record.expiration_block <= last_seen_block
