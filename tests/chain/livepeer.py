"""Livepeer's real protocol contracts on anvil, deployed from the npm package @livepeer/sdk.

The compiled artifacts (ABI and bytecode, solc 0.8.9) come from
``tools/node_modules/@livepeer/sdk/abis`` (``npm ci`` in tools/); nothing of
them is copied into the repository. The one contract the package lacks,
L2LPTDataCache (the Minter reads ``l1CirculatingSupply()``), is a stand-in
returning 0, compiled by solcjs from ``contracts/``.

Deploy order (about 43 transactions): Controller; Minter, LivepeerToken,
the L2LPTDataCache stand-in; TicketBroker behind a ManagerProxy (also
registered as ``JobsManager``, which the Minter requires); BondingManager
(linked to SortedDoublyLL), RoundsManager, ServiceRegistry, each behind a
ManagerProxy. Each registers with ``setContractInfo(keccak256(name), address,
gitHash)``, a proxied target as ``<Name>Target``. The Controller starts paused.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from tests.common.pm.pm_evm import tool

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tools" / "node_modules" / "@livepeer" / "sdk" / "abis"
STAND_INS = Path(__file__).resolve().parent / "contracts"
GIT_HASH = b"\x00" * 20
ZERO = "0x0000000000000000000000000000000000000000"

ROUND_LENGTH = 100
"""Blocks per round: params expire 40 blocks after the quote and validity is 2 rounds."""
TICKET_VALIDITY_PERIOD = 2
UNLOCK_PERIOD = 2


def artifact(path: str) -> dict[str, Any]:
    file = ARTIFACTS / path
    if not file.exists():
        pytest.fail(f"{file} is missing: run `./dev test` (or `cd tools && npm ci`)")
    return json.loads(file.read_text())


ARTIFACT_PATHS = {
    "Controller": "Controller.sol/Controller.json",
    "Minter": "token/Minter.sol/Minter.json",
    "LivepeerToken": "token/LivepeerToken.sol/LivepeerToken.json",
    "TicketBroker": "pm/TicketBroker.sol/TicketBroker.json",
    "BondingManager": "bonding/BondingManager.sol/BondingManager.json",
    "SortedDoublyLL": "libraries/SortedDoublyLL.sol/SortedDoublyLL.json",
    "RoundsManager": "rounds/RoundsManager.sol/RoundsManager.json",
    "AdjustableRoundsManager": "rounds/AdjustableRoundsManager.sol/AdjustableRoundsManager.json",
    "ServiceRegistry": "ServiceRegistry.sol/ServiceRegistry.json",
    "ManagerProxy": "ManagerProxy.sol/ManagerProxy.json",
}


def abi_of(name: str) -> list[dict[str, Any]]:
    return artifact(ARTIFACT_PATHS[name])["abi"]


def compile_stand_ins(out: Path) -> dict[str, tuple[list, str]]:
    """(abi, bytecode) of each stand-in contract in ``contracts/``, compiled by solcjs."""
    sources = sorted(p.name for p in STAND_INS.glob("*.sol"))
    done = subprocess.run(
        [tool("solcjs"), "--bin", "--abi", "--optimize", "-o", str(out), "--base-path", ".", *sources],
        cwd=STAND_INS, capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"solcjs failed:\n{done.stdout}\n{done.stderr}")
    compiled = {}
    for source in sources:
        name = source.removesuffix(".sol")
        bin_file = next(out.glob(f"*{name}_sol_{name}.bin"))
        compiled[name] = (json.loads(bin_file.with_suffix(".abi").read_text()), bin_file.read_text().strip())
    return compiled


def compile_stand_in(out: Path) -> tuple[list, str]:
    return compile_stand_ins(out)["L2LPTDataCacheStandIn"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AnvilNode:
    """An anvil process that can be stopped (SIGTERM dumps its state) and restarted from that state."""

    port: int
    state: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [tool("anvil"), "--host", "127.0.0.1", "--port", str(self.port), "--quiet", "--state", str(self.state),
             "--chain-id", "31337"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            # anvil keeps old block states under $HOME/.foundry/anvil/tmp and never removes them (about 1 GB a
            # test session): kept beside the state file, in pytest's own temporary folders, they go with those
            env={**os.environ, "HOME": str(self.state.parent)},
        )
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 5}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                pytest.fail(f"anvil exited: {err}")
            try:
                w3.eth.chain_id  # noqa: B018
                return
            except Exception:
                time.sleep(0.05)
        pytest.fail("anvil did not answer within 60 s")

    def stop(self) -> None:
        """SIGTERM: anvil writes its state to ``state`` and exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None


@dataclass
class Livepeer:
    """The deployed protocol and helpers to drive it from the test (the owner's account)."""

    w3: Web3
    owner: str
    controller: Contract
    contracts: dict[str, Contract] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Contract:
        try:
            return self.__dict__["contracts"][name]
        except KeyError:
            raise AttributeError(name) from None

    # -- transactions -------------------------------------------------------

    def send(self, fn: Any, sender: str | None = None, value: int = 0) -> dict:
        sender = sender or self.owner
        tx = fn.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.01)
        if receipt["status"] != 1:
            raise AssertionError(f"{fn.fn_name} from {sender} reverted")
        return receipt

    def fund(self, address: str, eth: int = 1000) -> None:
        self.w3.provider.make_request("anvil_setBalance", [address, hex(eth * 10**18)])
        self.w3.provider.make_request("anvil_impersonateAccount", [address])

    # -- blocks and rounds --------------------------------------------------

    def block(self) -> int:
        return self.w3.eth.block_number

    def mine(self, blocks: int) -> None:
        if blocks > 0:
            self.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def round(self) -> int:
        return self.RoundsManager.functions.currentRound().call()

    def mine_to_round(self, round_: int) -> None:
        """Mine until the latest block is the first block of ``round_`` (a transaction then lands in it)."""
        target = round_ * ROUND_LENGTH
        self.mine(target - self.block())

    def next_round(self, *, initialize: bool = True) -> int:
        round_ = self.round() + 1
        self.mine_to_round(round_)
        if initialize:
            self.send(self.RoundsManager.functions.initializeRound())
        return round_

    # -- participants -------------------------------------------------------

    def register_orchestrator(self, address: str, stake: int, *, reward_cut: int = 0, fee_share: int = 0) -> None:
        """Mint LPT, bond it to itself and register as a transcoder (active from the next round)."""
        self.fund(address)
        self.send(self.LivepeerToken.functions.mint(address, stake))
        self.send(self.LivepeerToken.functions.approve(self.BondingManager.address, stake), address)
        self.send(self.BondingManager.functions.bond(stake, address), address)
        self.send(self.BondingManager.functions.transcoder(reward_cut, fee_share), address)

    def delegate(self, delegator: str, to: str, amount: int) -> None:
        self.fund(delegator)
        self.send(self.LivepeerToken.functions.mint(delegator, amount))
        self.send(self.LivepeerToken.functions.approve(self.BondingManager.address, amount), delegator)
        self.send(self.BondingManager.functions.bond(amount, to), delegator)

    def unbond_all(self, address: str) -> None:
        bonded = self.BondingManager.functions.getDelegator(address).call()[0]
        self.send(self.BondingManager.functions.unbond(bonded), address)

    def fund_sender(self, sender: str, deposit: int, reserve: int) -> None:
        self.fund(sender, eth=(deposit + reserve) // 10**18 + 10)
        self.send(self.TicketBroker.functions.fundDepositAndReserve(deposit, reserve), sender, value=deposit + reserve)

    def reward_events(self, transcoder: str, from_block: int = 0) -> list[dict]:
        """(round, block) of each Reward event for ``transcoder``."""
        logs = self.BondingManager.events.Reward().get_logs(
            from_block=from_block, argument_filters={"transcoder": to_checksum_address(transcoder)}
        )
        return [{"block": log["blockNumber"], "round": log["blockNumber"] // ROUND_LENGTH, "amount": log["args"]["amount"]}
                for log in logs]

    def redeemed_events(self, recipient: str, from_block: int = 0) -> list[dict]:
        logs = self.TicketBroker.events.WinningTicketRedeemed().get_logs(
            from_block=from_block, argument_filters={"recipient": to_checksum_address(recipient)}
        )
        return [dict(log["args"], tx=log["transactionHash"].to_0x_hex()) for log in logs]


def deploy(w3: Web3, stand_in: tuple[list, str], *, num_active: int = 10, adjustable: bool = False) -> Livepeer:
    """Deploy and configure the protocol; returns it unpaused, at the first block of an initialized round.

    ``adjustable``: RoundsManager is the package's AdjustableRoundsManager, whose
    block number and block hash the test sets (``setBlockNum``, ``setBlockHash``).
    """
    owner = w3.eth.accounts[0]
    txs = 0

    def wait(tx: bytes) -> dict:
        nonlocal txs
        txs += 1
        receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.01)
        assert receipt["status"] == 1, "deployment transaction reverted"
        return receipt

    def new(name: str, *args: Any, abi: list | None = None, bytecode: str | None = None) -> Contract:
        if abi is None:
            art = artifact(ARTIFACT_PATHS[name])
            abi, bytecode = art["abi"], art["bytecode"]
        factory = w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = wait(factory.constructor(*args).transact({"from": owner}))
        return w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    def register(name: str, address: str) -> None:
        wait(controller.functions.setContractInfo(keccak(text=name), address, GIT_HASH).transact({"from": owner}))

    def proxied(name: str, target_bytecode: str | None = None, source: str | None = None) -> Contract:
        art = artifact(ARTIFACT_PATHS[source or name])
        target = new(name, controller.address, abi=art["abi"], bytecode=target_bytecode or art["bytecode"])
        register(f"{name}Target", target.address)
        proxy = new("ManagerProxy", controller.address, keccak(text=f"{name}Target"))
        register(name, proxy.address)
        return w3.eth.contract(address=proxy.address, abi=art["abi"])

    controller = new("Controller")
    lp = Livepeer(w3, owner, controller)
    minter = new("Minter", controller.address, 137, 3, 500_000)
    register("Minter", minter.address)
    token = new("LivepeerToken")
    register("LivepeerToken", token.address)
    wait(token.functions.grantRole(keccak(text="MINTER_ROLE"), minter.address).transact({"from": owner}))
    wait(token.functions.grantRole(keccak(text="MINTER_ROLE"), owner).transact({"from": owner}))
    cache = new("", abi=stand_in[0], bytecode=stand_in[1])
    register("L2LPTDataCache", cache.address)
    broker = proxied("TicketBroker")
    register("JobsManager", broker.address)

    sorted_ll = new("SortedDoublyLL")
    bm_art = artifact(ARTIFACT_PATHS["BondingManager"])
    code = bm_art["bytecode"][2:]
    for refs in bm_art["linkReferences"].values():
        for ref in refs.get("SortedDoublyLL", []):
            at = 2 * ref["start"]
            code = code[:at] + sorted_ll.address[2:].lower() + code[at + 2 * ref["length"]:]
    bonding = proxied("BondingManager", "0x" + code)
    rounds = proxied("RoundsManager", source="AdjustableRoundsManager" if adjustable else None)
    registry = proxied("ServiceRegistry")
    lp.contracts.update(Minter=minter, LivepeerToken=token, TicketBroker=broker, BondingManager=bonding,
                        RoundsManager=rounds, ServiceRegistry=registry)

    for fn in (bonding.functions.setUnbondingPeriod(7), bonding.functions.setNumActiveTranscoders(num_active),
               rounds.functions.setRoundLength(ROUND_LENGTH), rounds.functions.setRoundLockAmount(100_000),
               broker.functions.setUnlockPeriod(UNLOCK_PERIOD),
               broker.functions.setTicketValidityPeriod(TICKET_VALIDITY_PERIOD)):
        wait(fn.transact({"from": owner}))
    wait(controller.functions.unpause().transact({"from": owner}))
    if not adjustable:
        lp.next_round()
    lp.deploy_txs = txs  # type: ignore[attr-defined]
    return lp


def new_account() -> tuple[str, bytes]:
    acct = Account.create()
    return acct.address, bytes(acct.key)
