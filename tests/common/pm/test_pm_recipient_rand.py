"""recipientRand: HMAC-SHA256 over the quoted fields, keyed by the shared secret."""

from __future__ import annotations

import hashlib
import hmac
from fractions import Fraction

import pytest
from eth_utils import keccak

from baton_common.pm import ExpirationParams, new_seed, recipient_rand, recipient_rand_hash, seed_issued_at

SECRET = b"s" * 32
SENDER = bytes.fromhex("00112233445566778899aabbccddeeff00112233")
BASE = dict(
    seed=0x0102,
    sender=SENDER,
    face_value=0x0300,
    win_prob=0xFF,
    expiration_block=0x0A0B0C,
    price=Fraction(4, 6),
    expiration_params=ExpirationParams(9, b"\xee" * 32),
)


def test_matches_the_byte_layout_of_the_spec() -> None:
    message = (
        bytes.fromhex("0102")  # mBE(seed)
        + SENDER
        + bytes.fromhex("0300")  # mBE(faceValue)
        + bytes.fromhex("ff")  # mBE(winProb)
        + bytes.fromhex("0a0b0c")  # mBE(expirationBlock)
        + bytes.fromhex("02")  # mBE(price.Num) of the reduced 2/3
        + bytes.fromhex("03")  # mBE(price.Denom)
        + (9).to_bytes(32, "big")
        + b"\xee" * 32  # auxData
    )
    expected = int.from_bytes(hmac.new(SECRET, message, hashlib.sha256).digest(), "big")
    assert recipient_rand(SECRET, **BASE) == expected


def test_zero_values_are_empty_bytes_and_no_aux_data() -> None:
    fields = BASE | dict(seed=0, face_value=0, win_prob=0, expiration_block=0, price=Fraction(0))
    fields["expiration_params"] = ExpirationParams()
    message = SENDER + b"\x01"  # only the sender and price.Denom = 1 remain
    expected = int.from_bytes(hmac.new(SECRET, message, hashlib.sha256).digest(), "big")
    assert recipient_rand(SECRET, **fields) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 0x0103},
        {"sender": b"\x01" * 20},
        {"face_value": 0x0301},
        {"win_prob": 0xFE},
        {"expiration_block": 0x0A0B0D},
        {"price": Fraction(1, 3)},
        {"expiration_params": ExpirationParams(10, b"\xee" * 32)},
        {"expiration_params": ExpirationParams(9, b"\xef" * 32)},
    ],
)
def test_every_field_changes_the_rand(change: dict) -> None:
    assert recipient_rand(SECRET, **(BASE | change)) != recipient_rand(SECRET, **BASE)


def test_secret_changes_the_rand_and_equal_prices_do_not() -> None:
    assert recipient_rand(b"t" * 32, **BASE) != recipient_rand(SECRET, **BASE)
    assert recipient_rand(SECRET, **(BASE | {"price": Fraction(200, 300)})) == recipient_rand(SECRET, **BASE)


def test_rand_hash_commits_to_the_left_padded_rand() -> None:
    assert recipient_rand_hash(5) == keccak((5).to_bytes(32, "big"))
    rand = recipient_rand(SECRET, **BASE)
    assert recipient_rand_hash(rand) == keccak(rand.to_bytes(32, "big"))


def test_seeds_carry_their_quote_time_above_192_random_bits() -> None:
    issued_at = 1_700_000_000
    seeds = {new_seed(issued_at) for _ in range(64)}
    assert len(seeds) == 64
    assert all(0 <= s < 2**256 and seed_issued_at(s) == issued_at for s in seeds)
    assert max(s % 2**192 for s in seeds).bit_length() > 184  # the low bits are random
    assert seed_issued_at(new_seed(2**64 - 1)) == 2**64 - 1
    with pytest.raises(ValueError):
        new_seed(2**64)
    with pytest.raises(ValueError):
        new_seed(-1)
