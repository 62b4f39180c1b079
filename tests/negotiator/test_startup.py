"""Negotiator start-up: secrets, the ETH keystore and the settings are checked before any traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from baton_common.config import ConfigError, load_settings
from baton_negotiator.__main__ import Negotiator
from baton_negotiator.config import NegotiatorSettings
from baton_negotiator.keystore import load_keystore
from tests.helpers import service_env

ONCHAIN = {"BATON_NETWORK": "arbitrum-one-mainnet", "BATON_NEGOTIATOR_SERVICE_ADDR": "203.0.113.7:8935"}


def start(nats_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton_negotiator"], capture_output=True, text=True, timeout=30,
                          env=service_env(nats_url, **env))


def keystore(tmp_path: Path, password: str = "s3cret") -> tuple[Path, bytes, str]:
    account = Account.create()
    path = tmp_path / "keystore"
    path.mkdir()
    (path / "UTC--key").write_text(json.dumps(Account.encrypt(account.key, password, kdf="scrypt", iterations=2**10)))
    return path, bytes(account.key), account.address


def test_onchain_without_a_ticket_secret_does_not_start(nats_url: str, tmp_path: Path) -> None:
    path, _, _ = keystore(tmp_path)
    run = start(nats_url, **ONCHAIN, BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(path))
    assert run.returncode == 2
    assert "BATON_NEGOTIATOR_TICKET_SECRET_FILE is not set" in run.stderr


def test_onchain_needs_a_service_address_and_a_keystore(nats_url: str) -> None:
    run = start(nats_url, BATON_NETWORK="arbitrum-one-mainnet")
    assert run.returncode == 2 and "BATON_NEGOTIATOR_SERVICE_ADDR (-serviceAddr) is required on-chain" in run.stderr
    run = start(nats_url, **ONCHAIN)
    assert run.returncode == 2 and "BATON_NEGOTIATOR_ETH_KEYSTORE_PATH" in run.stderr


def test_a_short_secret_does_not_start_and_is_not_printed(nats_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("abcdef0123")
    path, _, _ = keystore(tmp_path)
    run = start(nats_url, **ONCHAIN, BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(secret),
                BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(path))
    assert run.returncode == 2 and "at least 32" in run.stderr and "abcdef0123" not in run.stderr


def test_a_good_secret_and_keystore_are_loaded(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("11" * 32 + "\n")
    path, key, address = keystore(tmp_path)
    (tmp_path / "password").write_text("s3cret\n")
    settings = load_settings(NegotiatorSettings, "negotiator", argv=["-ethPassword", str(tmp_path / "password")],
                             env={**ONCHAIN, "BATON_NEGOTIATOR_TICKET_SECRET_FILE": str(secret),
                                  "BATON_NEGOTIATOR_ETH_KEYSTORE_PATH": str(path)})
    negotiator = Negotiator(settings)
    assert negotiator.ticket_secret == bytes([0x11]) * 32
    assert negotiator.eth_key == key and "0x" + negotiator.address.hex() == address.lower()
    assert negotiator.checks()["ticket_secret"].detail == "loaded"


def test_a_wrong_keystore_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path, _, _ = keystore(tmp_path)
    with pytest.raises(ConfigError, match="does not open the keystore") as err:
        load_keystore(str(path), "not-the-password")
    assert "not-the-password" not in str(err.value)


def test_offchain_needs_no_secret_but_checks_one_that_is_given(tmp_path: Path) -> None:
    assert Negotiator(NegotiatorSettings()).ticket_secret is None
    with pytest.raises(ConfigError, match="cannot read"):
        Negotiator(NegotiatorSettings(ticket_secret_file=str(tmp_path / "missing")))


@pytest.mark.parametrize(("env", "named"), [
    ({"BATON_NEGOTIATOR_MAX_SESSIONS": "lots"}, "BATON_NEGOTIATOR_MAX_SESSIONS"),
    ({"BATON_NEGOTIATOR_PRICE_PER_UNIT": "12usd"}, "BATON_NEGOTIATOR_PRICE_PER_UNIT"),
    ({"BATON_NEGOTIATOR_SERVICE_ADDR": "nohost"}, "BATON_NEGOTIATOR_SERVICE_ADDR"),
    ({"BATON_NEGOTIATOR_JOB_TIMEOUTS": '{"llm": -1}'}, "BATON_NEGOTIATOR_JOB_TIMEOUTS"),
    ({"BATON_NEGOTIATOR_AUTH_WEBHOOK_URL": "ftp://x"}, "BATON_NEGOTIATOR_AUTH_WEBHOOK_URL"),
    ({"BATON_NEGOTIATOR_MAX_BODY_BYTES_IN_FLIGHT": "10"}, "BATON_NEGOTIATOR_MAX_BODY_BYTES_IN_FLIGHT"),
    # A client's share of the cold lookups as large as the whole bucket would let one client spend it all.
    ({"BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND": "5", "BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_CLIENT_PER_SECOND": "5"},
     "BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_CLIENT_PER_SECOND"),
])
def test_bad_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(NegotiatorSettings, "negotiator", argv=[], env=env)


def test_a_clients_share_of_the_cold_lookups_defaults_to_a_quarter_of_the_bucket() -> None:
    env = {"BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND": "4"}
    assert load_settings(NegotiatorSettings, "negotiator", argv=[], env=env).lookups_per_client == 1.0
    env["BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_CLIENT_PER_SECOND"] = "3"
    assert load_settings(NegotiatorSettings, "negotiator", argv=[], env=env).lookups_per_client == 3.0


def test_go_livepeer_flags_are_accepted() -> None:
    settings = load_settings(NegotiatorSettings, "negotiator", env={},
                             argv=["-serviceAddr=10.0.0.1:8935", "-pricePerUnit=1200", "-pixelsPerUnit=3",
                                   "-maxSessions=auto", "-autoAdjustPrice=false", "-ticketEV=1000",
                                   "-authWebhookUrl=https://auth.example/gw"])
    assert (settings.public_addr, settings.price_per_unit, settings.pixels_per_unit) == ("10.0.0.1:8935", "1200", 3)
    assert settings.max_sessions == "auto" and settings.auto_adjust_price is False and settings.ticket_ev == 1000
    assert settings.auth_webhook_url == "https://auth.example/gw"


def test_onchain_without_chain_data_is_not_ready_and_says_why(private_nats, tmp_path: Path) -> None:  # noqa: ANN001
    import httpx

    from tests.helpers import free_port

    private_nats.start()
    secret = tmp_path / "secret"
    secret.write_text("11" * 32)
    path, _, _ = keystore(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_negotiator"], stderr=subprocess.PIPE,
                            env=service_env(private_nats.url, BATON_NETWORK="arbitrum-one-mainnet",
                                            BATON_NEGOTIATOR_SERVICE_ADDR=f"127.0.0.1:{free_port()}",
                                            BATON_NEGOTIATOR_JOB_PORT="0", BATON_HTTP_PORT=str(port),
                                            BATON_NEGOTIATOR_STATE_DIR=str(tmp_path / "state"),
                                            BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(secret),
                                            BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(path),
                                            BATON_NEGOTIATOR_ETH_PASSWORD="s3cret"))
    try:
        import time

        deadline = time.monotonic() + 30
        body = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                body = r.json()
                if "chain data" in str(body):  # started, and it says what is missing
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        assert r.status_code == 503
        assert "chain data 'head' is missing" in str(body)
    finally:
        proc.kill()
        proc.wait()
