"""Chain service offchain (the default): with -ethUrl it reports a real Ethereum node."""

from __future__ import annotations

import asyncio
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import nats
import pytest

from baton_chain.__main__ import Chain
from baton_chain.chain import EthHealth, EthUnreachable
from baton_chain.config import ChainSettings
from baton_chain.errors import EmptyResult
from baton_chain.eth import Eth
from baton_common.config import ConfigError, load_settings
from baton_common.schemas import HEARTBEAT_BUCKET, heartbeat_key
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
        with pytest.raises(EthUnreachable, match="eth_chainId: ConnectError"):
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


KEY = "sk_live_0123SECRET"


@pytest.fixture
def refusing_node() -> Iterator[str]:
    """An RPC provider that refuses our API key (HTTP 401), at a URL carrying that key."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error":"invalid api key"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2/{KEY}?apikey={KEY}"
    server.shutdown()


@pytest.mark.parametrize("network", ["offchain", "devnet"])
async def test_the_rpc_urls_api_key_is_in_no_log_readyz_heartbeat_or_metric(
        network: str, refusing_node: str, nats_url: str, prefix: str, orchestrator) -> None:
    port = free_port()
    onchain = {} if network == "offchain" else {
        "BATON_CHAIN_ETH_CONTROLLER": "0x" + "12" * 20, "BATON_CHAIN_ETH_KEYSTORE_PATH": str(orchestrator.keystore),
        "BATON_CHAIN_ETH_PASSWORD": str(orchestrator.password_file), "BATON_CHAIN_RPC_TIMEOUT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "baton_chain"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_INSTANCE_ID=prefix,
                                            BATON_NETWORK=network, BATON_LOG_LEVEL="debug",
                                            BATON_CHAIN_ETH_URL=f"{refusing_node},https://user:{KEY}@127.0.0.1:1/",
                                            **onchain))
    try:
        deadline = time.monotonic() + 30
        readyz = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                eth = r.json().get("checks", {}).get("eth", {})
                if eth and not eth["ok"] and eth["detail"] != "not checked yet":
                    readyz = r.text
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        assert readyz, "the eth check never reported the refusing node"
        assert "401" in readyz or "down" in readyz  # the operator sees why, without the key
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        nc = await nats.connect(nats_url)
        try:
            kv = await nc.jetstream().key_value(HEARTBEAT_BUCKET)
            heartbeat = (await kv.get(heartbeat_key("chain", prefix))).value.decode()
        finally:
            await nc.close()
        await asyncio.sleep(1.5)  # a few more failing calls and retries in the log
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    logs = (out + err).decode()
    assert "starting" in logs and '"eth_url": "***"' in logs
    for seen in (logs, readyz, metrics, heartbeat):
        assert KEY not in seen and "/v2/" not in seen


def test_a_network_whose_chain_id_the_node_does_not_have_stops_at_start(anvil: Anvil, nats_url: str,
                                                                        orchestrator) -> None:
    proc = subprocess.run([sys.executable, "-m", "baton_chain"], capture_output=True, timeout=60,
                          env=service_env(nats_url, BATON_HTTP_PORT=str(free_port()), BATON_NETWORK="arbitrum-one-mainnet",
                                          BATON_CHAIN_ETH_URL=anvil.url,
                                          BATON_CHAIN_ETH_KEYSTORE_PATH=str(orchestrator.keystore),
                                          BATON_CHAIN_ETH_PASSWORD=str(orchestrator.password_file)))
    assert proc.returncode == 2
    assert ("configuration error: BATON_NETWORK (-network) arbitrum-one-mainnet is chain id 42161, but the "
            "Ethereum node at BATON_CHAIN_ETH_URL (-ethUrl) #0 127.0.0.1 is chain id 31337") in proc.stderr.decode()


async def test_a_contract_read_without_data_is_a_clear_chain_error() -> None:
    class Codeless:
        async def run(self, op):
            return b""  # eth_call at an address without code

    eth = Eth(Codeless(), "0x" + "12" * 20)
    with pytest.raises(EmptyResult, match="Controller.getContract at 0x1212.* returned no data: no such contract"):
        await eth.resolve()


async def test_a_chain_task_that_dies_stops_the_process_and_shows_in_readiness() -> None:
    reasons: list[str] = []
    chain = Chain(load_settings(ChainSettings, "chain", env={}, argv=[]))
    chain.ctx = SimpleNamespace(fatal=reasons.append)

    async def broken() -> None:
        raise ValueError("a bug")

    chain._spawn(broken(), "redeem")
    await asyncio.sleep(0.05)
    assert reasons == ["chain task redeem: ValueError: a bug"]
    check = chain.checks()["chain_tasks"]
    assert not check.ok and check.required and "redeem: ValueError" in check.detail
