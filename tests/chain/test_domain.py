"""The chain service's pure rules, its ABI signatures against Livepeer's artifacts, config and keystore."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from eth_account import Account

from baton_chain.abi import EVENTS, FUNCTIONS
from baton_chain.bus import PriceFeedError, eth_is_base
from baton_chain.config import ChainSettings
from baton_chain.domain import RefusalCode, Transcoder, classify_revert, pool_hints, should_reward
from baton_chain.keystore import load_account
from baton_common.config import ConfigError, load_settings, redacted
from tests.helpers import service_env

from .conftest import LIGHT_SCRYPT_N
from .livepeer import ARTIFACT_PATHS, ZERO, artifact

A, B, C, ME = ("0x" + c * 40 for c in "abcd")


def test_hints_place_the_orchestrator_by_its_new_stake() -> None:
    pool = [(A, 300), (B, 200), (ME, 100), (C, 50)]
    assert pool_hints(ME, 250, pool, 10) == (A, B)
    assert pool_hints(ME, 400, pool, 10) == (ZERO, A)
    assert pool_hints(ME, 100, pool, 10) == (B, C)
    assert pool_hints(ME, 10, pool, 10) == (C, ZERO)
    assert pool_hints(ME, 10, [(ME, 5)], 10) == (ZERO, ZERO)


def test_hints_drop_the_tail_of_a_full_pool_we_are_not_in() -> None:
    assert pool_hints(ME, 60, [(A, 300), (B, 200), (C, 50)], 3) == (B, ZERO)


def test_reward_rule_is_go_livepeers() -> None:
    t = Transcoder(last_reward_round=9, last_active_stake_update_round=10, activation_round=2,
                   deactivation_round=2**256 - 1)
    assert should_reward(t, True, 10, 10)
    assert not should_reward(t, False, 10, 10)  # inactive
    assert not should_reward(t, True, 9, 10)  # round not initialized
    assert not should_reward(Transcoder(10, 10, 2, 2**256 - 1), True, 10, 10)  # already rewarded


def test_revert_reasons_that_end_a_ticket() -> None:
    assert classify_revert("ticket is used") == RefusalCode.USED
    assert classify_revert("ticket is expired") == RefusalCode.EXPIRED
    assert classify_revert("ECDSA: invalid signature 's' value") == RefusalCode.INVALID
    assert classify_revert("ticket creationRound does not have a block hash") == RefusalCode.NO_BLOCK_HASH
    assert classify_revert("current round is not initialized") is None  # retried on a later block
    assert classify_revert("out of gas") is None


def _abi_signature(entry: dict) -> str:
    def kind(i: dict) -> str:
        if i["type"].startswith("tuple"):
            return "(" + ",".join(kind(c) for c in i["components"]) + ")" + i["type"][5:]
        return i["type"]

    return f"{entry['name']}({','.join(kind(i) for i in entry['inputs'])})"


@pytest.mark.parametrize("key", sorted(k for k in FUNCTIONS if not k.startswith("PriceFeed.")))
def test_each_function_signature_is_in_livepeers_abi(key: str) -> None:
    fn = FUNCTIONS[key]
    entries = [e for e in artifact(ARTIFACT_PATHS[fn.contract])["abi"] if e.get("type") == "function"]
    by_sig = {_abi_signature(e): e for e in entries}
    assert fn.signature in by_sig, f"{fn.signature} not in {fn.contract}'s ABI"
    outputs = by_sig[fn.signature]["outputs"]
    assert len(outputs) == len(fn.outputs)


@pytest.mark.parametrize("key", sorted(EVENTS))
def test_each_event_is_in_livepeers_abi(key: str) -> None:
    ev = EVENTS[key]
    entries = [e for e in artifact(ARTIFACT_PATHS[ev.contract])["abi"] if e.get("type") == "event"]
    assert f"{ev.name}({','.join(ev.inputs)})" in {_abi_signature(e) for e in entries}


def test_onchain_settings_need_a_key_and_know_go_livepeers_controllers() -> None:
    env = {"BATON_NETWORK": "arbitrum-one-mainnet", "BATON_CHAIN_ETH_URL": "http://a:8545,https://b/key"}
    with pytest.raises(ConfigError, match="ETH_KEYSTORE_PATH"):
        load_settings(ChainSettings, "chain", env=env, argv=[])
    s = load_settings(ChainSettings, "chain", env=env, argv=["-ethKeystorePath", "/k", "-maxGasPrice=5"])
    assert s.eth_urls == ["http://a:8545", "https://b/key"]
    assert s.controller == "0xD8E8328501E9645d16Cf49539efC04f734606ee4"
    assert s.price_feed == "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"
    assert s.redeem_gas_used == 1_200_000 and s.max_gas_price == 5
    with pytest.raises(ConfigError, match="has no default Controller"):
        load_settings(ChainSettings, "chain", env={**env, "BATON_NETWORK": "devnet"}, argv=["-ethKeystorePath=/k"])
    with pytest.raises(ConfigError, match="ETH_CONTROLLER"):
        load_settings(ChainSettings, "chain", env=env, argv=["-ethKeystorePath=/k", "-ethController=0x12"])


def test_keystore_loads_with_a_password_file_and_never_shows_the_password(tmp_path) -> None:
    acct = Account.create()
    folder = tmp_path / "keystore"
    folder.mkdir()
    (folder / "UTC--x").write_text(json.dumps(Account.encrypt(acct.key, "s3cret-pass", iterations=LIGHT_SCRYPT_N)))
    (tmp_path / "pw").write_text("s3cret-pass\n")
    assert load_account(str(folder), str(tmp_path / "pw"), acct.address).address == acct.address
    assert load_account(str(folder), "s3cret-pass").address == acct.address
    with pytest.raises(ConfigError) as wrong:
        load_account(str(folder), "not-the-pass")
    assert "not-the-pass" not in str(wrong.value) and "s3cret" not in str(wrong.value)
    with pytest.raises(ConfigError, match="no keystore for"):
        load_account(str(folder), "s3cret-pass", "0x" + "11" * 20)


def test_transaction_timeout_is_a_go_duration_and_reward_unset_means_while_registered() -> None:
    def load(*argv: str, **env: str) -> ChainSettings:
        return load_settings(ChainSettings, "chain", env=env, argv=list(argv))

    assert load().tx_timeout == 300.0 and load().reward is None
    assert load("-transactionTimeout=5m").tx_timeout == 300.0
    assert load("-transactionTimeout", "1m30s").tx_timeout == 90.0
    assert load(BATON_CHAIN_TX_TIMEOUT="45s").tx_timeout == 45.0
    assert load(BATON_CHAIN_TX_TIMEOUT="20").tx_timeout == 20.0  # Baton's plain seconds still work
    assert load("-reward").reward is True and load("-reward=false").reward is False
    assert load(BATON_CHAIN_REWARD="f").reward is False
    with pytest.raises(ConfigError, match=r"'5 minutes' for flag -transactionTimeout: expected a Go duration"):
        load("-transactionTimeout=5 minutes")
    with pytest.raises(ConfigError, match="BATON_CHAIN_TX_TIMEOUT"):
        load(BATON_CHAIN_TX_TIMEOUT="0s")


def test_a_bad_transaction_timeout_stops_the_process_with_exit_2(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "baton_chain", "-transactionTimeout=soon"], capture_output=True,
                          text=True, timeout=60, env=service_env("nats://127.0.0.1:1"))
    assert done.returncode == 2, done.stderr
    assert "-transactionTimeout" in done.stderr + done.stdout


def test_price_feed_descriptions_as_go_livepeer_reads_them() -> None:
    assert eth_is_base("ETH / USD") is True
    assert eth_is_base("USD / ETH") is False
    for bad in ("BTC / USD", "ETHUSD", "", "ETH /"):
        with pytest.raises(PriceFeedError):
            eth_is_base(bad)


def test_price_feed_functions_match_the_aggregator_interface(stand_ins) -> None:
    abi, _ = stand_ins["AggregatorStandIn"]
    by_sig = {_abi_signature(e): e for e in abi if e.get("type") == "function"}
    for key in (k for k in FUNCTIONS if k.startswith("PriceFeed.")):
        fn = FUNCTIONS[key]
        assert fn.signature in by_sig
        assert tuple(o["type"] for o in by_sig[fn.signature]["outputs"]) == fn.outputs


def test_eth_url_is_secret_and_bad_values_get_clear_errors_without_it(tmp_path) -> None:
    key = "sk_live_SECRET123"
    base = {"BATON_NETWORK": "arbitrum-one-mainnet", "BATON_CHAIN_ETH_KEYSTORE_PATH": str(tmp_path)}

    def load(**env: str) -> ChainSettings:
        return load_settings(ChainSettings, "chain", env={**base, **env}, argv=[])

    shown = redacted(load(BATON_CHAIN_ETH_URL=f"https://arb.example/v2/{key}"))  # what the start log shows
    assert shown["eth_url"] == "***"
    with pytest.raises(ConfigError) as bad:
        load(BATON_CHAIN_ETH_URL=f"https://ok.example/{key},arb.example/v2/{key}")
    assert "URL #1 must be an http(s) URL" in str(bad.value) and key not in str(bad.value)
    with pytest.raises(ConfigError, match="URL #0 is a wss:// URL: Baton speaks JSON-RPC over http") as ws:
        load(BATON_CHAIN_ETH_URL=f"wss://arb.example/ws/{key}")
    assert key not in str(ws.value)
    with pytest.raises(ConfigError, match="NONCE_CLEANUP_MARGIN"):
        load(BATON_CHAIN_ETH_URL="http://a:8545", BATON_CHAIN_NONCE_CLEANUP_MARGIN="0")
    with pytest.raises(ConfigError, match="looks like a file path, but no such file") as pw:
        load(BATON_CHAIN_ETH_URL="http://a:8545", BATON_CHAIN_ETH_PASSWORD="/run/secrets/eth-pasword")
    assert "eth-pasword" not in str(pw.value)
    (tmp_path / "pw").write_text("x\n")
    assert load(BATON_CHAIN_ETH_URL="http://a:8545", BATON_CHAIN_ETH_PASSWORD=str(tmp_path / "pw"))
