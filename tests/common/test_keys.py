"""The shared keys: the auth-token key every negotiator replica derives alike."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from baton_common.errors import ConfigError
from baton_common.keys import AUTH_KEY_INFO, auth_token_key, hkdf_sha256, load_or_create_key_file


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22), bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), salt=bytes.fromhex("000102030405060708090a0b0c"),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_replicas_with_the_same_ticket_secret_derive_the_same_separate_key() -> None:
    secret = bytes(range(32))
    key = auth_token_key(ticket_secret=secret)
    assert key == auth_token_key(ticket_secret=bytes(range(32))) and len(key) == 32
    assert key != secret and key != auth_token_key(ticket_secret=bytes(range(1, 33)))
    assert key != hmac.new(secret, AUTH_KEY_INFO, hashlib.sha256).digest()  # HKDF, not one bare HMAC
    assert key != hkdf_sha256(secret, b"baton/some-other-use/v1")


def test_offchain_key_file_is_created_once_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "auth-token.key"
    first = load_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 32
    assert load_or_create_key_file(path) == first == auth_token_key(key_file=path)


def test_a_bad_key_file_stops_the_service(tmp_path: Path) -> None:
    path = tmp_path / "auth-token.key"
    path.write_text("not hex")
    with pytest.raises(ConfigError, match="auth-token.key"):
        load_or_create_key_file(path)
    with pytest.raises(ConfigError, match="no auth-token key"):
        auth_token_key()
