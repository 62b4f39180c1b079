"""Chain service offchain (the default): with -ethUrl it reports a real Ethereum node."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from baton_chain.chain import EthHealth
from baton_chain.config import ChainSettings
from baton_common.config import ConfigError, load_settings
from tests.common.pm.pm_evm import Anvil
from tests.helpers import free_port, service_env, wait_ready


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    node = Anvil.start()
    yield node
    node.stop()


def test_onchain_needs_an_eth_url() -> None:
    with pytest.raises(ConfigError, match="needs an Ethereum node: set BATON_CHAIN_ETH_URL"):
        load_settings(ChainSettings, "chain", env={"BATON_NETWORK": "arbitrum-one-mainnet"}, argv=[])


def test_go_livepeer_flag_name_for_the_node() -> None:
    s = load_settings(ChainSettings, "chain", env={}, argv=["-network=arbitrum-one-mainnet", "-ethUrl", "http://x:8545",
                                                           "-ethKeystorePath", "/keystore"])
    assert s.eth_url == "http://x:8545"
    with pytest.raises(ConfigError, match="must be an http"):
        load_settings(ChainSettings, "chain", env={}, argv=["-ethUrl", "localhost:8545"])


async def test_eth_probe_against_a_real_node(anvil: Anvil) -> None:
    async with httpx.AsyncClient() as http:
        assert (await EthHealth(anvil.url, http).check()).startswith("chain id 31337, block ")
        with pytest.raises(httpx.HTTPError):
            await EthHealth(f"http://127.0.0.1:{free_port()}", http).check()


def test_chain_process_reports_the_node_in_readyz(anvil: Anvil, nats_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_chain"], stderr=subprocess.PIPE,
                            env=service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_CHAIN_ETH_URL=anvil.url))
    try:
        wait_ready(port, proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            checks = httpx.get(f"http://127.0.0.1:{port}/readyz").json()["checks"]
            if checks["eth"]["ok"]:
                break
            time.sleep(0.2)
        assert checks["eth"]["detail"].startswith("chain id 31337")
        assert checks["network"]["detail"] == "offchain"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
