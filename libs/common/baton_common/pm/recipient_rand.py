"""recipientRand: the orchestrator's secret half of the ticket lottery.

Spec/livepeer-wire.md section 3.3 gives go-livepeer's input, a concatenation of
minimal big-endian fields. That input has no field boundaries: a gateway could
move bytes from one field into the next (the price into the expiration block,
the win probability into the face value) and keep the same HMAC input, so the
same rand, for params nobody quoted. Gateways never compute this HMAC, so Baton
uses an unambiguous input instead and stays wire-compatible: a domain tag, then
every field at a fixed width (``rand_message``).

The HMAC key is not the shared secret itself but a key derived from it and the
*generation* of the nonce state (``rand_key``): whenever the state that proves
"already seen" starts empty (a new bucket, a lost bucket, a process restarted
with in-memory stores), the generation changes, and every rand quoted before it
stops validating. So a replay can never meet an empty nonce record.

The seed, which gateways echo without reading, carries what the validator must
know before it can trust anything (``SeedFields``): the layout version and the
generation tag (params from another layout or generation are answered
``TicketParams expired``, on which gateways fetch fresh params rather than
suspending the orchestrator), the quote time, the digest of the quote's scope
(``scope.Scope``), and random bits. The HMAC covers the seed, so all of these
come back authenticated, and nothing is stored per quote.
"""

from __future__ import annotations

import hmac
import os
from fractions import Fraction
from hashlib import sha256

import msgspec

from .encoding import UINT256_MAX, keccak256, uint256
from .scope import SCOPE_DIGEST_BITS, Scope
from .ticket import ExpirationParams

__all__ = [
    "GENERATION_BYTES",
    "SEED_LAYOUT",
    "RandKeys",
    "SeedFields",
    "generation_tag",
    "new_seed",
    "parse_rand_message",
    "rand_key",
    "rand_message",
    "read_seed",
    "recipient_rand",
    "recipient_rand_hash",
]

SEED_LAYOUT = 2
"""The seed layout and rand encoding in force (the seed's top byte). 1 was go-livepeer's concatenation."""

GENERATION_BYTES = 16
"""Length of a nonce-state generation: random bytes a store makes when its state starts empty."""

_LAYOUT_BITS = 8
_GENERATION_TAG_BITS = 48
_ISSUED_AT_BITS = 40
_RANDOM_BITS = 64
assert _LAYOUT_BITS + _GENERATION_TAG_BITS + _ISSUED_AT_BITS + SCOPE_DIGEST_BITS + _RANDOM_BITS == 256

_RANDOM_SHIFT = 0
_SCOPE_SHIFT = _RANDOM_BITS
_ISSUED_AT_SHIFT = _SCOPE_SHIFT + SCOPE_DIGEST_BITS
_GENERATION_SHIFT = _ISSUED_AT_SHIFT + _ISSUED_AT_BITS
_LAYOUT_SHIFT = _GENERATION_SHIFT + _GENERATION_TAG_BITS

_KEY_DOMAIN = b"baton/recipient-rand-key/v2\x00"
_TAG_DOMAIN = b"baton/generation-tag/v2\x00"
_MESSAGE_DOMAIN = b"baton/recipient-rand/v2\x00"
MESSAGE_LENGTH = len(_MESSAGE_DOMAIN) + 32 + 20 + 32 * 6 + 32
"""Every rand input has this length: the domain tag, then fixed-width fields."""


def _mask(bits: int) -> int:
    return (1 << bits) - 1


class SeedFields(msgspec.Struct, frozen=True, gc=False):
    """What a seed holds, most significant first: layout(8) | generation tag(48) | issued at(40) |
    scope digest(96) | random(64). The top byte is never zero, so the seed is always 32 bytes."""

    layout: int
    generation_tag: int
    issued_at: int
    scope_digest: int
    random: int


def generation_tag(secret: bytes, generation: bytes) -> int:
    """The 48 bits a seed carries to name the key its rand was made with (secret and generation).

    Keyed by the secret too, so params quoted under another secret (a rotation,
    or replicas briefly holding different secret files) read as another
    generation: ``TicketParams expired``, which gateways answer by refreshing.
    """
    if len(generation) != GENERATION_BYTES:
        raise ValueError(f"a generation is {GENERATION_BYTES} bytes, got {len(generation)}")
    return int.from_bytes(hmac.digest(secret, _TAG_DOMAIN + generation, sha256)[: _GENERATION_TAG_BITS // 8], "big")


def new_seed(*, issued_at: int, tag: int, scope: Scope, random: int | None = None) -> int:
    """A fresh seed for params quoted at ``issued_at`` (Unix seconds) for ``scope``; ``tag`` is ``generation_tag``."""
    if not 0 <= issued_at <= _mask(_ISSUED_AT_BITS):
        raise ValueError(f"issue time must fit in {_ISSUED_AT_BITS} bits, got {issued_at}")
    if random is None:
        random = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
    if not 0 <= random <= _mask(_RANDOM_BITS):
        raise ValueError(f"random part must fit in {_RANDOM_BITS} bits")
    return (
        (SEED_LAYOUT << _LAYOUT_SHIFT)
        | ((tag & _mask(_GENERATION_TAG_BITS)) << _GENERATION_SHIFT)
        | (issued_at << _ISSUED_AT_SHIFT)
        | (scope.digest() << _SCOPE_SHIFT)
        | (random << _RANDOM_SHIFT)
    )


def read_seed(seed: int) -> SeedFields:
    """Split a seed (any uint256) into its fields; check ``layout`` before trusting the rest."""
    if not 0 <= seed <= UINT256_MAX:
        raise ValueError("a seed is a uint256")
    return SeedFields(
        layout=seed >> _LAYOUT_SHIFT,
        generation_tag=(seed >> _GENERATION_SHIFT) & _mask(_GENERATION_TAG_BITS),
        issued_at=(seed >> _ISSUED_AT_SHIFT) & _mask(_ISSUED_AT_BITS),
        scope_digest=(seed >> _SCOPE_SHIFT) & _mask(SCOPE_DIGEST_BITS),
        random=seed & _mask(_RANDOM_BITS),
    )


def rand_key(secret: bytes, generation: bytes) -> bytes:
    """HMAC-SHA256(secret, domain || generation): the key rands of this generation are made with."""
    if len(generation) != GENERATION_BYTES:
        raise ValueError(f"a generation is {GENERATION_BYTES} bytes, got {len(generation)}")
    return hmac.digest(secret, _KEY_DOMAIN + generation, sha256)


class RandKeys:
    """``rand_key`` and ``generation_tag`` for one secret, derived once per generation (the last few kept)."""

    def __init__(self, secret: bytes, keep: int = 4) -> None:
        self._secret = secret
        self._keep = keep
        self._keys: dict[bytes, tuple[bytes, int]] = {}

    def _derived(self, generation: bytes) -> tuple[bytes, int]:
        derived = self._keys.get(generation)
        if derived is None:
            derived = (rand_key(self._secret, generation), generation_tag(self._secret, generation))
            if len(self._keys) >= self._keep:
                self._keys.pop(next(iter(self._keys)))
            self._keys[generation] = derived
        return derived

    def __call__(self, generation: bytes) -> bytes:
        return self._derived(generation)[0]

    def tag(self, generation: bytes) -> int:
        return self._derived(generation)[1]


def rand_message(
    *,
    seed: int,
    sender: bytes,
    face_value: int,
    win_prob: int,
    expiration_block: int,
    price: Fraction,
    expiration_params: ExpirationParams,
) -> bytes:
    """domain || uint256(seed) || sender(20) || uint256(faceValue) || uint256(winProb) ||
    uint256(expirationBlock) || uint256(price.num) || uint256(price.den) || uint256(creationRound) ||
    creationRoundBlockHash(32): every field at a fixed width, so no two inputs share bytes.

    ``price`` is the reduced price per unit (a Fraction is always reduced).
    ValueError for a value that does not fit its width.
    """
    if len(sender) != 20:
        raise ValueError(f"sender must be a 20-byte address, got {len(sender)} bytes")
    block_hash = expiration_params.creation_round_block_hash
    if len(block_hash) != 32:
        raise ValueError(f"creation round block hash must be 32 bytes, got {len(block_hash)}")
    numbers = (seed, face_value, win_prob, expiration_block, price.numerator, price.denominator)
    if any(not 0 <= n <= UINT256_MAX for n in numbers) or not 0 <= expiration_params.creation_round <= UINT256_MAX:
        raise ValueError("every rand field must be a uint256")
    return b"".join(
        (
            _MESSAGE_DOMAIN,
            uint256(seed),
            sender,
            uint256(face_value),
            uint256(win_prob),
            uint256(expiration_block),
            uint256(price.numerator),
            uint256(price.denominator),
            uint256(expiration_params.creation_round),
            block_hash,
        )
    )


def parse_rand_message(message: bytes) -> dict:
    """The fields ``rand_message`` encoded (its inverse, which proves the encoding unambiguous)."""
    if len(message) != MESSAGE_LENGTH or not message.startswith(_MESSAGE_DOMAIN):
        raise ValueError("not a rand message")
    body = message[len(_MESSAGE_DOMAIN) :]

    def word(i: int) -> int:
        return int.from_bytes(body[i : i + 32], "big")

    return dict(
        seed=word(0),
        sender=body[32:52],
        face_value=word(52),
        win_prob=word(84),
        expiration_block=word(116),
        price=Fraction(word(148), word(180)),
        expiration_params=ExpirationParams(word(212), body[244:276]),
    )


def recipient_rand(
    key: bytes,
    *,
    seed: int,
    sender: bytes,
    face_value: int,
    win_prob: int,
    expiration_block: int,
    price: Fraction,
    expiration_params: ExpirationParams,
) -> int:
    """uint256(HMAC-SHA256(key, rand_message(...))), with ``key`` from ``rand_key``."""
    message = rand_message(
        seed=seed,
        sender=sender,
        face_value=face_value,
        win_prob=win_prob,
        expiration_block=expiration_block,
        price=price,
        expiration_params=expiration_params,
    )
    return int.from_bytes(hmac.digest(key, message, sha256), "big")


def recipient_rand_hash(rand: int) -> bytes:
    """keccak256(leftpad32(recipientRand)): the commitment tickets carry."""
    return keccak256(uint256(rand))
