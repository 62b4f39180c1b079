"""The nonce rules every NonceStore applies.

No nonce twice, at most 600 per recipientRand (``record_nonces``), and a record
is forgotten by L1 block, never by wall-clock time (``may_forget``), as
go-livepeer's ``senderNoncesCleanupLoop`` does: a replay is refused by its
nonce record until the chain has passed its params' expiration block, and by
the expiry check from then on, so one of the two always stands.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .ports import NonceVerdict

__all__ = ["MAX_SENDER_NONCES", "NonceRecord", "may_forget", "record_nonces"]

MAX_SENDER_NONCES = 600
"""Nonces accepted per recipientRand; gateways refresh their params well before."""


class NonceRecord(msgspec.Struct):
    """The nonces seen under one recipientRandHash and when its params expire."""

    expiration_block: int
    nonces: list[int] = msgspec.field(default_factory=list)


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
