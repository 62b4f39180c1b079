"""The nonce rule every NonceStore applies: no nonce twice, at most 600 per recipientRand."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .ports import NonceVerdict

__all__ = ["MAX_SENDER_NONCES", "NonceRecord", "record_nonces"]

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
