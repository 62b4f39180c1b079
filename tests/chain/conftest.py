"""Fixtures for the chain service: Livepeer's real contracts on anvil, a private NATS, the service as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from tests.helpers import PrivateNats, free_port, service_env

from .livepeer import AnvilNode, Livepeer, compile_stand_ins, deploy, new_account

PASSWORD = "correct horse battery staple"
LIGHT_SCRYPT_N = 4096
"""geth's light scrypt cost (keystores made with `--lightkdf`): the same format, quicker to decrypt in tests."""
STAKE = 10**21


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list, str]]:
    return compile_stand_ins(tmp_path_factory.mktemp("solc-chain"))


@pytest.fixture(scope="session")
def stand_in(stand_ins: dict[str, tuple[list, str]]) -> tuple[list, str]:
    return stand_ins["L2LPTDataCacheStandIn"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[AnvilNode]:
    anvil = AnvilNode(free_port(), tmp_path / "anvil-state.json")
    anvil.start()
    yield anvil
    anvil.stop()


@pytest.fixture
def num_active() -> int:
    """BondingManager's active set size (a module may override this fixture)."""
    return 10


@pytest.fixture
def livepeer(node: AnvilNode, stand_in: tuple[list, str], num_active: int) -> Livepeer:
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
    return deploy(w3, stand_in, num_active=num_active)


@pytest.fixture
def bus(private_nats: PrivateNats) -> PrivateNats:
    private_nats.start()
    return private_nats


@dataclass
class Orchestrator:
    address: str
    key: bytes
    keystore: Path
    password_file: Path


@pytest.fixture
def orchestrator(tmp_path: Path) -> Orchestrator:
    address, key = new_account()
    keystore = tmp_path / "keystore"
    keystore.mkdir()
    encrypted = Account.encrypt(key, PASSWORD, iterations=LIGHT_SCRYPT_N)
    (keystore / f"UTC--2026--{address[2:].lower()}").write_text(json.dumps(encrypted))
    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    return Orchestrator(address, key, keystore, password_file)


@dataclass
class ChainProcess:
    """``python -m baton_chain`` against the test's anvil and NATS; kill -9 and restart at will."""

    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    starts: int = field(default=0)

    def start(self) -> None:
        self.starts += 1
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "baton_chain"], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def chain_process(tmp_path: Path, node: AnvilNode, livepeer: Livepeer, bus: PrivateNats,
                  orchestrator: Orchestrator) -> Iterator[callable]:
    made: list[ChainProcess] = []

    def make(instance: str = "chain-a", **extra: str) -> ChainProcess:
        port = free_port()
        env = service_env(bus.url, BATON_NETWORK="devnet", BATON_INSTANCE_ID=instance,
                          BATON_HTTP_PORT=str(port), BATON_LOG_FORMAT="json",
                          BATON_CHAIN_ETH_URL=node.url,
                          BATON_CHAIN_ETH_CONTROLLER=livepeer.controller.address,
                          BATON_CHAIN_ETH_KEYSTORE_PATH=str(orchestrator.keystore),
                          BATON_CHAIN_ETH_PASSWORD=str(orchestrator.password_file),
                          BATON_CHAIN_ETH_ACCT_ADDR=orchestrator.address,
                          BATON_CHAIN_POLL_INTERVAL="0.2", BATON_CHAIN_REWARD_BACKOFF="0.5",
                          BATON_CHAIN_RPC_TIMEOUT="2", BATON_CHAIN_TX_TIMEOUT="20", **extra)
        process = ChainProcess(env, port, tmp_path / f"{instance}.log")
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
