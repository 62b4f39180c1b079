"""Loading the shared recipientRand secret (BATON_NEGOTIATOR_TICKET_SECRET_FILE)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton_common.errors import ConfigError
from baton_common.pm import TicketSecretError, load_ticket_secret


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "ticket.secret"
    path.write_bytes(content)
    return path


def test_hex_file_as_openssl_rand_writes_it(tmp_path: Path) -> None:
    secret = bytes(range(32))
    assert load_ticket_secret(write(tmp_path, secret.hex().encode() + b"\n")) == secret
    assert load_ticket_secret(str(write(tmp_path, b"  0x" + secret.hex().upper().encode()))) == secret


def test_raw_bytes_file(tmp_path: Path) -> None:
    secret = bytes(range(200, 256)) + b"\n\x00"
    assert load_ticket_secret(write(tmp_path, secret)) == secret


def test_longer_hex_secret_is_used_whole(tmp_path: Path) -> None:
    secret = bytes(range(64))
    assert load_ticket_secret(write(tmp_path, secret.hex().encode())) == secret


@pytest.mark.parametrize("content", [b"ab" * 31, b"short raw secret", b""])
def test_too_short_is_refused_with_the_setting_named(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(TicketSecretError, match="BATON_NEGOTIATOR_TICKET_SECRET_FILE.*at least 32") as refused:
        load_ticket_secret(write(tmp_path, content))
    assert isinstance(refused.value, ConfigError)
    assert refused.value.code == "ticket_secret"


def test_missing_file_and_unset_setting(tmp_path: Path) -> None:
    with pytest.raises(TicketSecretError, match="BATON_NEGOTIATOR_TICKET_SECRET_FILE: cannot read .*nope"):
        load_ticket_secret(tmp_path / "nope")
    with pytest.raises(TicketSecretError, match="BATON_NEGOTIATOR_TICKET_SECRET_FILE is not set"):
        load_ticket_secret(None)
