"""recipientRand: the orchestrator's secret half of the ticket lottery.

Spec/livepeer-wire.md section 3.3. The rand is an HMAC-SHA256, keyed by the
orchestrator's secret, over everything the quoted params commit to; nothing is
stored per quote. Every negotiator replica shares the secret (see ``secret.py``),
so any replica re-derives the rand of params another replica issued.
"""

from __future__ import annotations

import hmac
import os
from fractions import Fraction
from hashlib import sha256

from .encoding import keccak256, mbe, uint256
from .ticket import ExpirationParams

__all__ = ["SEED_RANDOM_BITS", "new_seed", "recipient_rand", "recipient_rand_hash", "seed_issued_at"]

SEED_RANDOM_BITS = 192
"""A seed's low 192 bits are random; the 64 above them hold when its params were quoted."""


def new_seed(issued_at: int) -> int:
    """A fresh seed: ``issued_at`` (Unix seconds) in the top 64 of 256 bits, 192 random bits below.

    Gateways echo the seed without reading it, and the recipientRand HMAC covers
    it, so the issue time comes back authenticated: the validator refuses params
    older than its ``max_params_age`` without storing anything per quote.
    """
    if not 0 <= issued_at < 2**64:
        raise ValueError(f"issue time must fit in 64 bits, got {issued_at}")
    return (issued_at << SEED_RANDOM_BITS) | int.from_bytes(os.urandom(SEED_RANDOM_BITS // 8), "big")


def seed_issued_at(seed: int) -> int:
    """The issue time (Unix seconds) a ``new_seed`` seed carries."""
    return seed >> SEED_RANDOM_BITS


def recipient_rand(
    secret: bytes,
    *,
    seed: int,
    sender: bytes,
    face_value: int,
    win_prob: int,
    expiration_block: int,
    price: Fraction,
    expiration_params: ExpirationParams,
) -> int:
    """uint256(HMAC-SHA256(secret, mBE(seed) || sender || mBE(faceValue) || mBE(winProb)
    || mBE(expirationBlock) || mBE(price.num) || mBE(price.den) || auxData)).

    ``price`` is the reduced price per unit (a Fraction is always reduced); it
    must not be negative.
    """
    message = b"".join(
        (
            mbe(seed),
            sender,
            mbe(face_value),
            mbe(win_prob),
            mbe(expiration_block),
            mbe(price.numerator),
            mbe(price.denominator),
            expiration_params.aux_data(),
        )
    )
    return int.from_bytes(hmac.digest(secret, message, sha256), "big")


def recipient_rand_hash(rand: int) -> bytes:
    """keccak256(leftpad32(recipientRand)): the commitment tickets carry."""
    return keccak256(uint256(rand))
