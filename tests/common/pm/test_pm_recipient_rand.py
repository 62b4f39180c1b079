"""recipientRand: HMAC-SHA256 over fixed-width fields, keyed by the secret and the nonce generation."""

from __future__ import annotations

import hashlib
import hmac
from fractions import Fraction

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from baton_common.pm import (
    GENERATION_BYTES,
    SEED_LAYOUT,
    ExpirationParams,
    Scope,
    generation_tag,
    new_seed,
    rand_key,
    rand_message,
    read_seed,
    recipient_rand,
    recipient_rand_hash,
)
from baton_common.pm.recipient_rand import MESSAGE_LENGTH, parse_rand_message

SECRET = b"s" * 32
GENERATION = bytes(range(GENERATION_BYTES))
KEY = rand_key(SECRET, GENERATION)
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

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
int64 = st.integers(min_value=0, max_value=2**63 - 1)
fields = st.fixed_dictionaries(
    dict(
        seed=uint256,
        sender=st.binary(min_size=20, max_size=20),
        face_value=uint256,
        win_prob=uint256,
        expiration_block=uint256,
        price=st.builds(Fraction, int64, st.integers(min_value=1, max_value=2**63 - 1)),
        expiration_params=st.builds(
            ExpirationParams, st.integers(min_value=0, max_value=2**63 - 1), st.binary(min_size=32, max_size=32)
        ),
    )
)


def go_livepeer_message(f: dict) -> bytes:
    """The spec's (go-livepeer's) input: minimal big-endian fields concatenated with no boundaries."""

    def mbe(v: int) -> bytes:
        return v.to_bytes((v.bit_length() + 7) // 8, "big")

    aux = f["expiration_params"].aux_data()
    return b"".join(
        (
            mbe(f["seed"]),
            f["sender"],
            mbe(f["face_value"]),
            mbe(f["win_prob"]),
            mbe(f["expiration_block"]),
            mbe(f["price"].numerator),
            mbe(f["price"].denominator),
            aux,
        )
    )


def test_matches_the_fixed_width_layout() -> None:
    message = (
        b"baton/recipient-rand/v2\x00"
        + (0x0102).to_bytes(32, "big")
        + SENDER
        + (0x0300).to_bytes(32, "big")
        + (0xFF).to_bytes(32, "big")
        + (0x0A0B0C).to_bytes(32, "big")
        + (2).to_bytes(32, "big")  # the reduced 2/3
        + (3).to_bytes(32, "big")
        + (9).to_bytes(32, "big")
        + b"\xee" * 32
    )
    assert rand_message(**BASE) == message and len(message) == MESSAGE_LENGTH
    key = hmac.new(SECRET, b"baton/recipient-rand-key/v2\x00" + GENERATION, hashlib.sha256).digest()
    assert KEY == key
    assert recipient_rand(KEY, **BASE) == int.from_bytes(hmac.new(key, message, hashlib.sha256).digest(), "big")


@given(fields)
def test_the_encoding_is_unambiguous(f: dict) -> None:
    """Every input has one length and parses back to its fields: no two tuples share an input."""
    message = rand_message(**f)
    assert len(message) == MESSAGE_LENGTH
    assert parse_rand_message(message) == f


@given(fields, st.integers(min_value=1, max_value=31), st.sampled_from(["seed", "face_value", "win_prob", "price"]))
def test_moving_bytes_between_fields_changes_the_input(f: dict, k: int, field: str) -> None:
    """The reviewer's attack: shift k bytes from one field into the next, which kept go-livepeer's input."""
    forged = dict(f)
    if field == "price":  # exp' = exp * 256^k + num, num' = 0: bytes of the price move into the block
        num = f["price"].numerator
        forged["expiration_block"] = f["expiration_block"] * 256**k + num % 256**k
        forged["price"] = Fraction(num // 256**k, f["price"].denominator)
    else:
        following = {"seed": None, "face_value": "win_prob", "win_prob": "expiration_block"}[field]
        if following is None:
            return
        value, low = divmod(f[field], 256**k)
        forged[field] = value
        forged[following] = low * 256 ** ((f[following].bit_length() + 7) // 8) + f[following]
    if forged == f or any(isinstance(v, int) and v >= 2**256 for v in forged.values()):
        return
    assert rand_message(**forged) != rand_message(**f)


def test_the_old_encoding_let_these_forgeries_through() -> None:
    """Why the encoding changed: each forged tuple had the honest tuple's go-livepeer input."""
    win_prob = int("01" + "ab" * 25, 16)
    honest = BASE | dict(price=Fraction(1200, 1), face_value=10**15, win_prob=win_prob, expiration_block=21_000_040)
    forgeries = [
        honest | dict(price=Fraction(4, 45057)),  # 04B0|01 read as 04|B001: a price 1.35e7 times lower
        honest | dict(face_value=10**15 * 256 + 1, win_prob=int("ab" * 25, 16)),  # a byte from wp into fv
        honest | dict(expiration_block=21_000_040 * 256**2 + 1200, price=Fraction(0, 1)),  # price into the block
    ]
    for forged in forgeries:
        assert go_livepeer_message(forged) == go_livepeer_message(honest)
        assert rand_message(**forged) != rand_message(**honest)


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
    assert recipient_rand(KEY, **(BASE | change)) != recipient_rand(KEY, **BASE)


def test_secret_and_generation_change_the_rand_and_equal_prices_do_not() -> None:
    assert recipient_rand(rand_key(b"t" * 32, GENERATION), **BASE) != recipient_rand(KEY, **BASE)
    assert recipient_rand(rand_key(SECRET, bytes(GENERATION_BYTES)), **BASE) != recipient_rand(KEY, **BASE)
    assert recipient_rand(KEY, **(BASE | {"price": Fraction(200, 300)})) == recipient_rand(KEY, **BASE)


def test_fields_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ValueError):
        rand_message(**(BASE | {"sender": b"\x01" * 19}))
    with pytest.raises(ValueError):
        rand_message(**(BASE | {"face_value": 2**256}))
    with pytest.raises(ValueError):
        rand_key(SECRET, b"short")


def test_rand_hash_commits_to_the_left_padded_rand() -> None:
    assert recipient_rand_hash(5) == keccak((5).to_bytes(32, "big"))
    rand = recipient_rand(KEY, **BASE)
    assert recipient_rand_hash(rand) == keccak(rand.to_bytes(32, "big"))


def test_seeds_carry_layout_generation_time_and_scope_above_random_bits() -> None:
    scope = Scope.of(27, "org/model")
    tag = generation_tag(SECRET, GENERATION)
    seeds = {new_seed(issued_at=1_700_000_000, tag=tag, scope=scope) for _ in range(64)}
    assert len(seeds) == 64
    for seed in seeds:
        assert 2**248 <= seed < 2**256  # the layout byte is never zero: always 32 bytes on the wire
        fields_ = read_seed(seed)
        assert fields_.layout == SEED_LAYOUT
        assert fields_.generation_tag == tag
        assert fields_.issued_at == 1_700_000_000
        assert fields_.scope_digest == scope.digest()
    assert max(read_seed(s).random for s in seeds).bit_length() > 56
    assert read_seed(new_seed(issued_at=2**40 - 1, tag=tag, scope=scope)).issued_at == 2**40 - 1
    with pytest.raises(ValueError):
        new_seed(issued_at=2**40, tag=tag, scope=scope)
    with pytest.raises(ValueError):
        new_seed(issued_at=-1, tag=tag, scope=scope)


def test_the_generation_tag_is_keyed_by_the_secret_too() -> None:
    """Params quoted under another secret read as another generation, not as a forged rand."""
    assert generation_tag(SECRET, GENERATION) != generation_tag(b"t" * 32, GENERATION)
    assert generation_tag(SECRET, GENERATION) != generation_tag(SECRET, bytes(16))
    assert generation_tag(SECRET, GENERATION) < 2**48


def test_a_go_livepeer_style_seed_reads_as_another_layout() -> None:
    """Seeds from before (issue time in the top 64 bits, or 32 random bytes) are not this layout."""
    assert read_seed(1_700_000_000 << 192).layout != SEED_LAYOUT
    assert read_seed(0x0102).layout != SEED_LAYOUT


def test_scopes_digest_apart() -> None:
    digests = {
        Scope.base().digest(),
        Scope.of(27, "a").digest(),
        Scope.of(27, "b").digest(),
        Scope.of(28, "a").digest(),
        Scope.from_pairs([(27, "a"), (28, "a")]).digest(),
        Scope.of(2, "7_a").digest(),
    }
    assert len(digests) == 6
    assert Scope.from_pairs([(28, "a"), (27, "a"), (27, "a")]) == Scope.from_pairs([(27, "a"), (28, "a")])
    with pytest.raises(ValueError):
        Scope.of(-1, "a")
