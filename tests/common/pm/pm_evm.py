"""A real EVM for the tests: anvil from npm, and Livepeer's real TicketBroker deployed on it.

Nothing is skipped: a missing tool fails the test run with the command that
installs it (``./dev test`` runs ``npm ci`` in tools/).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
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

TICKET_TUPLE = "(address,address,uint256,uint256,uint256,bytes32,bytes)"
REDEEMED_TOPIC = keccak(text="WinningTicketRedeemed(address,address,uint256,uint256,uint256,uint256,bytes)")


def redeemed_in(receipt: dict) -> bool:
    """Whether TicketBroker emitted WinningTicketRedeemed in this transaction."""
    return "0x" + REDEEMED_TOPIC.hex() in [log["topics"][0] for log in receipt["logs"]]


def tool(name: str) -> str:
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `./dev test` (or `cd tools && npm ci`)")
    return str(path)


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
    home: str = ""
    """anvil's $HOME: it keeps old block states under ~/.foundry/anvil/tmp and never removes them; removed at stop."""
    ids = itertools.count(1)

    @classmethod
    def start(cls) -> Anvil:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        home = tempfile.mkdtemp(prefix="baton-anvil-")
        process = subprocess.Popen(
            [tool("anvil"), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "HOME": home},
        )
        anvil = cls(f"http://127.0.0.1:{port}", process, httpx.Client(timeout=30), home)
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
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)

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


def ticket_args(signed: SignedTicket) -> tuple:
    """The Solidity Ticket struct; auxData abi-encoded as Livepeer's own tests build it."""
    t = signed.ticket
    aux = abi_encode(["uint256", "bytes32"], [t.creation_round, t.creation_round_block_hash])
    return (t.recipient, t.sender, t.face_value, t.win_prob, t.sender_nonce, t.recipient_rand_hash, aux)


@dataclass
class LivepeerBroker:
    """Livepeer's real TicketBroker (from @livepeer/sdk, deployed by ``tests.chain.livepeer``) on anvil.

    The same calls as ``TicketChecks``, against the contract gateways and
    orchestrators use: rounds come from the package's AdjustableRoundsManager,
    whose block number and hash the test sets; each ticket's sender is funded
    (deposit and reserve, sent as that sender through anvil's impersonation)
    the first time one of its tickets is redeemed.
    """

    anvil: Anvil
    broker: str
    rounds: str
    account: str
    round_length: int
    funded: set[str]
    livepeer: object = None

    @classmethod
    def deploy(cls, anvil: Anvil, stand_in: tuple[list, str]) -> LivepeerBroker:
        from web3 import Web3

        from tests.chain.livepeer import deploy

        lp = deploy(Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30})), stand_in, adjustable=True)
        return cls(anvil, lp.TicketBroker.address, lp.RoundsManager.address, lp.owner,
                   lp.RoundsManager.functions.roundLength().call(), set(), lp)

    def register(self, recipient: bytes, stake: int = 10**21) -> None:
        """Bond and register ``recipient`` as a transcoder: TicketBroker pays only registered ones."""
        from eth_utils import to_checksum_address

        self.livepeer.register_orchestrator(to_checksum_address(recipient), stake)

    def _call(self, to: str, signature: str, types: list[str], args: list, out: list[str]):
        data = "0x" + (_selector(signature) + abi_encode(types, args)).hex()
        result = self.anvil.rpc("eth_call", {"to": to, "data": data}, "latest")
        return abi_decode(out, bytes.fromhex(result[2:]))

    def _send(self, to: str, signature: str, types: list[str], args: list, *, sender: str | None = None,
              value: int = 0) -> dict:
        data = "0x" + (_selector(signature) + abi_encode(types, args)).hex()
        call = {"from": sender or self.account, "to": to, "data": data, "value": hex(value)}
        self.anvil.rpc("eth_call", call, "latest")  # raises EvmRevert with the contract's reason
        receipt = self.anvil.receipt(self.anvil.rpc("eth_sendTransaction", call))
        if int(receipt["status"], 16) != 1:
            raise EvmRevert("transaction failed")
        return receipt

    def set_round(self, round_: int, block_hash: bytes) -> None:
        """Make ``round_`` current and initialize it, with ``block_hash`` as its block hash."""
        self._send(self.rounds, "setBlockNum(uint256)", ["uint256"], [round_ * self.round_length])
        self._send(self.rounds, "setBlockHash(bytes32)", ["bytes32"], [block_hash])
        self._send(self.rounds, "initializeRound()", [], [])

    def ticket_hash(self, ticket_args: tuple) -> bytes:
        return self._call(self.broker, f"getTicketHash({TICKET_TUPLE})", [TICKET_TUPLE], [ticket_args],
                          ["bytes32"])[0]

    def is_used(self, ticket_hash: bytes) -> bool:
        return self._call(self.broker, "usedTickets(bytes32)", ["bytes32"], [ticket_hash], ["bool"])[0]

    def fund(self, sender: str, deposit: int = 10**18, reserve: int = 10**18) -> None:
        self.anvil.rpc("anvil_setBalance", sender, hex(10**21))
        self.anvil.rpc("anvil_impersonateAccount", sender)
        self._send(self.broker, "fundDepositAndReserve(uint256,uint256)", ["uint256", "uint256"],
                   [deposit, reserve], sender=sender, value=deposit + reserve)
        self.funded.add(sender)

    def redeem(self, ticket_args: tuple, sig: bytes, recipient_rand: int) -> dict:
        """Redeem on chain; raises EvmRevert with the contract's reason."""
        sender = "0x" + bytes(ticket_args[1]).hex()
        if sender not in self.funded and int(sender, 16) != 0:
            self.fund(sender)
        return self._send(
            self.broker,
            f"redeemWinningTicket({TICKET_TUPLE},bytes,uint256)",
            [TICKET_TUPLE, "bytes", "uint256"],
            [ticket_args, sig, recipient_rand],
        )

    def redeem_signed(self, signed: SignedTicket) -> dict:
        return self.redeem(ticket_args(signed), signed.sig, signed.recipient_rand)
