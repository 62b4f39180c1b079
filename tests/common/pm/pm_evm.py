"""A real EVM for the tests: anvil from npm, and the TicketChecks contract compiled by solcjs.

Nothing is skipped: a missing tool fails the test run with the command that
installs it (``./dev test`` runs ``npm ci`` in tools/).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

from baton_common.pm import SignedTicket

REPO = Path(__file__).resolve().parents[3]
TOOLS = REPO / "tools" / "node_modules" / ".bin"
CONTRACTS = Path(__file__).resolve().parent / "contracts"

TICKET_TUPLE = "(address,address,uint256,uint256,uint256,bytes32,bytes)"


def tool(name: str) -> str:
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `./dev test` (or `cd tools && npm ci`)")
    return str(path)


def compile_contracts(out: Path) -> dict[str, tuple[list, str]]:
    """Compile tests/common/pm/contracts/*.sol; returns name -> (abi, bytecode hex)."""
    sources = sorted(p.name for p in CONTRACTS.glob("*.sol"))
    done = subprocess.run(
        [tool("solcjs"), "--bin", "--abi", "--optimize", "-o", str(out), "--base-path", ".", *sources],
        cwd=CONTRACTS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"solcjs failed:\n{done.stdout}\n{done.stderr}")
    built = {}
    for bin_file in out.glob("*.bin"):
        name = bin_file.stem.rsplit("_", 1)[-1]
        abi = json.loads(bin_file.with_suffix(".abi").read_text())
        built[name] = (abi, bin_file.read_text().strip())
    return built


class EvmRevert(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _revert_reason(error: dict) -> str:
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x08c379a0"):
        return abi_decode(["string"], bytes.fromhex(data[10:]))[0]
    return str(error.get("message", error))


@dataclass
class Anvil:
    url: str
    process: subprocess.Popen
    http: httpx.Client
    ids = itertools.count(1)

    @classmethod
    def start(cls) -> Anvil:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen(
            [tool("anvil"), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        anvil = cls(f"http://127.0.0.1:{port}", process, httpx.Client(timeout=30))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"anvil exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                anvil.rpc("eth_chainId")
                return anvil
            except httpx.TransportError:
                time.sleep(0.1)
        anvil.stop()
        pytest.fail("anvil did not answer within 60s")

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def receipt(self, tx: str) -> dict:
        """The receipt of ``tx``, once anvil has mined it (automine: at once)."""
        deadline = time.monotonic() + 30
        while (receipt := self.rpc("eth_getTransactionReceipt", tx)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {tx} was not mined")
            time.sleep(0.01)
        return receipt

    def rpc(self, method: str, *params):
        reply = self.http.post(
            self.url, json={"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": list(params)}
        ).json()
        if "error" in reply:
            raise EvmRevert(_revert_reason(reply["error"]))
        return reply["result"]


@dataclass
class TicketChecks:
    """The deployed contract, called over JSON-RPC with eth-abi encoding."""

    anvil: Anvil
    address: str
    account: str

    @classmethod
    def deploy(cls, anvil: Anvil, bytecode: str) -> TicketChecks:
        account = anvil.rpc("eth_accounts")[0]
        tx = anvil.rpc("eth_sendTransaction", {"from": account, "data": "0x" + bytecode})
        receipt = anvil.receipt(tx)
        return cls(anvil, receipt["contractAddress"], account)

    def _call(self, signature: str, types: list[str], args: list, out: list[str]):
        data = "0x" + (_selector(signature) + abi_encode(types, args)).hex()
        result = self.anvil.rpc("eth_call", {"to": self.address, "data": data}, "latest")
        return abi_decode(out, bytes.fromhex(result[2:]))

    def _send(self, signature: str, types: list[str], args: list) -> dict:
        data = "0x" + (_selector(signature) + abi_encode(types, args)).hex()
        call = {"from": self.account, "to": self.address, "data": data}
        self.anvil.rpc("eth_call", call, "latest")  # raises EvmRevert with the contract's reason
        tx = self.anvil.rpc("eth_sendTransaction", call)
        receipt = self.anvil.receipt(tx)
        if int(receipt["status"], 16) != 1:
            raise EvmRevert("transaction failed")
        return receipt

    def set_round(self, round_: int, block_hash: bytes) -> None:
        self._send("setRound(uint256,bytes32)", ["uint256", "bytes32"], [round_, block_hash])

    def ticket_hash(self, ticket_args: tuple) -> bytes:
        return self._call(f"getTicketHash({TICKET_TUPLE})", [TICKET_TUPLE], [ticket_args], ["bytes32"])[0]

    def is_used(self, ticket_hash: bytes) -> bool:
        return self._call("usedTickets(bytes32)", ["bytes32"], [ticket_hash], ["bool"])[0]

    def redeem(self, ticket_args: tuple, sig: bytes, recipient_rand: int) -> dict:
        """Redeem on chain; raises EvmRevert with the contract's reason."""
        return self._send(
            f"redeemWinningTicket({TICKET_TUPLE},bytes,uint256)",
            [TICKET_TUPLE, "bytes", "uint256"],
            [ticket_args, sig, recipient_rand],
        )

    def redeem_signed(self, signed: SignedTicket) -> dict:
        return self.redeem(ticket_args(signed), signed.sig, signed.recipient_rand)


def ticket_args(signed: SignedTicket) -> tuple:
    """The Solidity Ticket struct; auxData abi-encoded as Livepeer's own tests build it."""
    t = signed.ticket
    aux = abi_encode(["uint256", "bytes32"], [t.creation_round, t.creation_round_block_hash])
    return (t.recipient, t.sender, t.face_value, t.win_prob, t.sender_nonce, t.recipient_rand_hash, aux)
