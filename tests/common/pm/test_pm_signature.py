"""Personal-sign signatures, checked against eth-account and eth-keys' pure-Python backend."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_keys import KeyAPI
from eth_keys.backends import NativeECCBackend
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from baton_common.pm import (
    InvalidSignature,
    address_of,
    checksum_address,
    personal_digest,
    recover_personal,
    sign_personal,
    verify_personal,
)
from baton_common.pm.signature import SECP256K1_N

native = KeyAPI(NativeECCBackend)
keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)


@settings(max_examples=30)
@given(keys, digests)
def test_recovers_what_eth_account_signs(key: bytes, digest: bytes) -> None:
    signed = Account.sign_message(encode_defunct(primitive=digest), key)
    address = bytes.fromhex(Account.from_key(key).address[2:])
    assert recover_personal(digest, bytes(signed.signature)) == address
    assert verify_personal(address, digest, bytes(signed.signature))
    assert not verify_personal(b"\x01" * 20, digest, bytes(signed.signature))


@settings(max_examples=15)
@given(keys, digests)
def test_signatures_recover_in_eth_keys_pure_python(key: bytes, digest: bytes) -> None:
    sig = sign_personal(key, digest)
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2
    native_sig = native.Signature(sig[:64] + bytes([sig[64] - 27]))
    recovered = native.ecdsa_recover(personal_digest(digest), native_sig)
    assert recovered.to_canonical_address() == address_of(key)
    assert address_of(key) == bytes.fromhex(Account.from_key(key).address[2:])


@given(digests)
def test_personal_digest_is_eip191_version_e(digest: bytes) -> None:
    assert personal_digest(digest) == _hash_eip191_message(encode_defunct(primitive=digest))


@pytest.fixture
def good() -> tuple[bytes, bytes, bytes]:
    key = b"\x42" * 32
    digest = b"\x07" * 32
    return address_of(key), digest, sign_personal(key, digest)


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_refuses_other_lengths(good, length: int) -> None:
    _, digest, sig = good
    with pytest.raises(InvalidSignature, match="invalid signature length"):
        recover_personal(digest, (sig * 3)[:length])


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_refuses_v_other_than_27_or_28(good, v: int) -> None:
    _, digest, sig = good
    with pytest.raises(InvalidSignature, match="v value must be 27 or 28"):
        recover_personal(digest, sig[:64] + bytes([v]))


def test_refuses_high_s_although_it_recovers_the_same_key(good) -> None:
    address, digest, sig = good
    s = int.from_bytes(sig[32:64], "big")
    high = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    # The malleated twin is a valid ECDSA signature of the same key...
    twin = native.Signature(high[:64] + bytes([high[64] - 27]))
    assert native.ecdsa_recover(personal_digest(digest), twin).to_canonical_address() == address
    # ...which Ethereum (and go-livepeer) refuse.
    with pytest.raises(InvalidSignature, match="s value too high"):
        recover_personal(digest, high)
    assert not verify_personal(address, digest, high)


def test_refuses_zero_r_and_s(good) -> None:
    _, digest, _ = good
    with pytest.raises(InvalidSignature):
        recover_personal(digest, bytes(64) + b"\x1b")


@given(st.binary(min_size=65, max_size=65), digests)
def test_random_signatures_only_ever_raise_invalid_signature(sig: bytes, digest: bytes) -> None:
    try:
        address = recover_personal(digest, sig)
    except InvalidSignature:
        return
    assert len(address) == 20


@given(st.binary(min_size=20, max_size=20))
def test_checksum_address_is_eip55(address: bytes) -> None:
    assert checksum_address(address) == to_checksum_address(address)
