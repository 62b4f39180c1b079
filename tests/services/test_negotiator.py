"""Negotiator start-up: the ticket secret is checked before any traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from baton_common.config import ConfigError, load_settings
from baton_negotiator.__main__ import Negotiator
from baton_negotiator.config import NegotiatorSettings
from tests.helpers import service_env


def start(nats_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton_negotiator"], capture_output=True, text=True, timeout=30,
                          env=service_env(nats_url, **env))


def test_onchain_without_a_ticket_secret_does_not_start(nats_url: str) -> None:
    run = start(nats_url, BATON_NETWORK="arbitrum-one-mainnet")
    assert run.returncode == 2
    assert "BATON_NEGOTIATOR_TICKET_SECRET_FILE is not set" in run.stderr


def test_a_short_secret_does_not_start_and_is_not_printed(nats_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("abcdef0123")
    run = start(nats_url, BATON_NETWORK="arbitrum-one-mainnet", BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(secret))
    assert run.returncode == 2 and "at least 32" in run.stderr and "abcdef0123" not in run.stderr


def test_a_good_secret_is_loaded(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("11" * 32 + "\n")
    settings = load_settings(NegotiatorSettings, "negotiator", argv=[],
                             env={"BATON_NETWORK": "arbitrum-one-mainnet",
                                  "BATON_NEGOTIATOR_TICKET_SECRET_FILE": str(secret)})
    negotiator = Negotiator(settings)
    assert negotiator.ticket_secret == bytes([0x11]) * 32
    assert negotiator.checks()["ticket_secret"].detail == "loaded"


def test_offchain_needs_no_secret_but_checks_one_that_is_given(tmp_path: Path) -> None:
    assert Negotiator(NegotiatorSettings()).ticket_secret is None
    with pytest.raises(ConfigError, match="cannot read"):
        Negotiator(NegotiatorSettings(ticket_secret_file=str(tmp_path / "missing")))
