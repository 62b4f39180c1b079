"""Adapter to Ethereum through web3.py: RPC failover and contract reads.

- :class:`RpcPool` holds one ``AsyncWeb3`` per URL. A call goes to the node
  that last answered; a transport error, a timeout or a JSON-RPC error of the
  node's own (rate limit, ``header not found``, ``missing trie node``,
  internal error, a refused log range) moves it to the next one, and when none
  is left it raises a ChainError. A contract revert, a missing transaction and
  a transaction refused for its nonce or fee are the node's answer, not its
  failure; "insufficient funds for gas" raises :class:`InsufficientFunds`.
  URLs may carry API keys: only their index and host are ever logged.
- :class:`Eth` reads the protocol (addresses resolved through the Controller).
- :class:`~.tx.TxSender` (its own module) sends the orchestrator's transactions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from eth_utils import keccak, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from .abi import EVENTS, FUNCTIONS, SENDER_FUNDS_EVENTS
from .errors import (
    ChainError,
    EmptyResult,
    InsufficientFunds,
    RpcNodeError,
    RpcUnavailable,
)

__all__ = ["CONTRACTS", "Block", "Eth", "RpcPool", "revert_reason"]

log = logging.getLogger("baton.chain.eth")

T = TypeVar("T")
CONTRACTS = ("BondingManager", "RoundsManager", "TicketBroker", "Minter", "ServiceRegistry")
ZERO_ADDRESS = "0x" + "00" * 20
FEE_KEYS = ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas")


def url_label(index: int, url: str) -> str:
    """What the logs say about a URL: its position and host, never its path or query (API keys)."""
    return f"#{index} {urlsplit(url).hostname or '?'}"


def revert_reason(exc: ContractLogicError) -> str:
    message = str(exc.message if getattr(exc, "message", None) else exc)
    return message.removeprefix("execution reverted: ").removeprefix("execution reverted")  or "execution reverted"


TX_ANSWERS = ("nonce too low", "nonce too high", "already known", "known transaction", "underpriced",
              "intrinsic gas too low", "exceeds block gas limit", "less than block base fee", "invalid sender",
              "execution reverted")
"""JSON-RPC error messages that answer the call itself (a send's nonce or fee): retried by the sender, never
on another node."""


def rpc_message(exc: Web3RPCError) -> str:
    """The node's error message of a JSON-RPC error reply."""
    error = (exc.rpc_response or {}).get("error") if isinstance(exc.rpc_response, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(exc.message)


class RpcPool:
    """Several JSON-RPC endpoints of one chain, used one at a time, failing over on errors."""

    def __init__(self, urls: list[str], *, timeout: float = 10.0,
                 on_failover: Callable[[int], None] = lambda index: None) -> None:
        if not urls:
            raise ValueError("no Ethereum JSON-RPC URL")
        self.urls = urls
        self.nodes = [AsyncWeb3(AsyncHTTPProvider(u, request_kwargs={"timeout": timeout})) for u in urls]
        self.healthy = [True] * len(urls)
        self.current = 0
        self._on_failover = on_failover

    async def run(self, op: Callable[[AsyncWeb3], Awaitable[T]]) -> T:
        last: BaseException | None = None
        n = len(self.nodes)
        for step in range(n):
            index = (self.current + step) % n
            try:
                result = await op(self.nodes[index])
            except (ContractLogicError, TransactionNotFound, ChainError):
                self.healthy[index] = True
                raise
            except Web3RPCError as exc:
                text = rpc_message(exc).lower()
                if "insufficient funds" in text:
                    self.healthy[index] = True
                    raise InsufficientFunds(f"the orchestrator's key cannot pay for gas: {rpc_message(exc)[:200]}"
                                            ) from None
                if any(answer in text for answer in TX_ANSWERS):
                    self.healthy[index] = True
                    raise
                # the node's own trouble: rate limit, header not found, missing trie node, internal error
                if self.healthy[index]:
                    log.warning("Ethereum node returned an error",
                                extra={"node": url_label(index, self.urls[index]), "error": rpc_message(exc)[:200]})
                self.healthy[index] = False
                last = exc
                continue
            except Exception as exc:  # transport: refused, reset, timeout, bad gateway
                if self.healthy[index]:
                    log.warning("Ethereum node failed", extra={"node": url_label(index, self.urls[index]),
                                                                "error": type(exc).__name__})
                self.healthy[index] = False
                last = exc
                continue
            self.healthy[index] = True
            if index != self.current:
                log.info("Ethereum node switched", extra={"node": url_label(index, self.urls[index])})
                self.current = index
                self._on_failover(index)
            return result
        if isinstance(last, Web3RPCError):
            raise RpcNodeError(f"every Ethereum node returned an error ({n} tried): {rpc_message(last)[:200]}")
        raise RpcUnavailable(f"no Ethereum node answered ({n} tried): {type(last).__name__}")

    async def close(self) -> None:
        for node in self.nodes:
            try:
                await node.provider.disconnect()
            except Exception:  # closing a session that never opened
                pass

    async def check(self) -> str:
        """Health check of every node; fails when none answers."""
        details = []
        for index, node in enumerate(self.nodes):
            try:
                number = await asyncio.wait_for(node.eth.block_number, timeout=5)
                self.healthy[index] = True
                details.append(f"{url_label(index, self.urls[index])} block {number}")
            except Exception as exc:  # any failure marks it down
                self.healthy[index] = False
                details.append(f"{url_label(index, self.urls[index])} down ({type(exc).__name__})")
        if not any(self.healthy):
            raise RpcUnavailable("; ".join(details))
        return "; ".join(details)


class Block(Protocol):
    number: int
    hash: bytes
    l1_number: int
    base_fee: int | None


class _Block:
    def __init__(self, raw: Any) -> None:
        self.number = int(raw["number"])
        self.hash = bytes(raw["hash"])
        l1 = raw.get("l1BlockNumber")
        self.l1_number = int(l1, 16) if isinstance(l1, str) else int(l1) if l1 is not None else self.number
        fee = raw.get("baseFeePerGas")
        self.base_fee = int(fee) if fee is not None else None


class Eth:
    """Reads of the Livepeer protocol at the latest block."""

    def __init__(self, pool: RpcPool, controller: str) -> None:
        self.pool = pool
        self.controller = to_checksum_address(controller)
        self.addresses: dict[str, str] = {"Controller": self.controller}

    async def resolve(self) -> dict[str, str]:
        """Each protocol contract's address, from the Controller (``getContract(keccak256(name))``)."""
        for name in CONTRACTS:
            address = await self.call("Controller.getContract", keccak(text=name))
            if int(address, 16) == 0:
                raise RpcUnavailable(f"the Controller at {self.controller} has no {name}: is -ethController right?")
            self.addresses[name] = to_checksum_address(address)
        return self.addresses

    async def call(self, fn: str, *args: Any, to: str | None = None, block: int | str = "latest") -> Any:
        spec = FUNCTIONS[fn]
        address = to or self.addresses[spec.contract]
        data = spec.data(*args)
        raw = bytes(await self.pool.run(lambda w3: w3.eth.call({"to": address, "data": data}, block)))
        if not raw and spec.outputs:
            raise EmptyResult(f"{fn} at {address} returned no data: no such contract on this node (is -network or "
                              "-ethController right, or is the node still syncing?)")
        try:
            return spec.result(raw)
        except Exception as exc:  # eth_abi: a short or malformed answer
            raise EmptyResult(f"{fn} at {address} returned data that does not decode ({type(exc).__name__})"
                              ) from None

    async def block(self) -> _Block:
        return _Block(await self.pool.run(lambda w3: w3.eth.get_block("latest")))

    async def block_at(self, number: int) -> _Block:
        return _Block(await self.pool.run(lambda w3: w3.eth.get_block(number)))

    async def gas_price(self) -> int:
        return int(await self.pool.run(lambda w3: w3.eth.gas_price))

    async def balance(self, address: str) -> int:
        return int(await self.pool.run(lambda w3: w3.eth.get_balance(to_checksum_address(address))))

    async def tx_sender(self, tx_hash: bytes) -> str:
        return str((await self.pool.run(lambda w3: w3.eth.get_transaction(tx_hash)))["from"])

    async def logs(self, event: str, from_block: int, to_block: int | str, *topics: bytes | None) -> list[Any]:
        spec = EVENTS[event]
        query = {
            "address": self.addresses[spec.contract], "fromBlock": from_block, "toBlock": to_block,
            "topics": [spec.topic, *[None if t is None else "0x" + t.rjust(32, b"\0").hex() for t in topics]],
        }
        return list(await self.pool.run(lambda w3: w3.eth.get_logs(query)))

    async def senders_moved(self, from_block: int, to_block: int) -> set[str]:
        """Senders (lowercase 0x hex) whose TicketBroker funds an event moved within the blocks, both included."""
        query = {
            "address": self.addresses["TicketBroker"], "fromBlock": from_block, "toBlock": to_block,
            "topics": [[EVENTS[e].topic for e in SENDER_FUNDS_EVENTS]],
        }
        logs = await self.pool.run(lambda w3: w3.eth.get_logs(query))
        return {"0x" + bytes(entry["topics"][1])[-20:].hex() for entry in logs if len(entry["topics"]) > 1}
