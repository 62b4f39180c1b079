"""The orchestrator's one transaction sender.

:class:`TxSender` signs with the orchestrator's key and owns its nonces: one
lock hands them out, so concurrent sends never collide; a "nonce too low"
resynchronizes from the node. A transaction not mined within the timeout is
replaced (same nonce, fees bumped 12.5%) while the bump stays within
-maxGasPrice; one still unmined after that is taken over by the next send
(same nonce, fees above it), so later transactions never queue behind it.
Every send first asks the lease whether this instance may send.
A caller's ``journal`` is given each signed transaction's nonce and hash
before it is sent (the redeemer's crash recovery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from .errors import (
    ChainError,
    GasPriceAboveCap,
    NotLeaseHolder,
    Superseded,
    TxNotMined,
    TxReverted,
)
from .eth import FEE_KEYS, RpcPool, revert_reason, rpc_message

__all__ = ["Lease", "TxSender"]

log = logging.getLogger("baton.chain.eth")


class Lease(Protocol):
    def held(self) -> bool: ...


Journal = Callable[[int, bytes], Awaitable[None]]
"""Told (nonce, transaction hash) of each signed transaction before it is sent."""


class TxSender:
    """The only path for this orchestrator's transactions."""

    def __init__(self, pool: RpcPool, account: LocalAccount, lease: Lease, *, max_gas_price: int = 0,
                 tx_timeout: float = 300.0, max_replacements: int = 1, poll: float = 0.5,
                 gas_limit: int = 0) -> None:
        self.pool = pool
        self.account = account
        self.address = account.address
        self.lease = lease
        self.max_gas_price = max_gas_price
        self.tx_timeout = tx_timeout
        self.max_replacements = max_replacements
        self.poll = poll
        self.gas_limit = gas_limit
        self._lock = asyncio.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._stuck: dict[int, dict[str, int]] = {}
        """Nonces whose send gave up ("not mined"), with the fees their last transaction paid."""

    @property
    def started(self) -> bool:
        """Whether this sender has placed a transaction since the start (it knows its next nonce)."""
        return self._nonce is not None

    async def nonces(self) -> tuple[int, int]:
        """(confirmed, pending) transaction counts of the account."""
        latest = await self.pool.run(lambda w3: w3.eth.get_transaction_count(self.address, "latest"))
        pending = await self.pool.run(lambda w3: w3.eth.get_transaction_count(self.address, "pending"))
        return int(latest), int(pending)

    async def wait_in_flight(self, timeout: float) -> bool:
        """Wait until the account has no transaction in the node's pool (after a restart); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            latest, pending = await self.nonces()
            if latest >= pending:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(self.poll)

    async def estimate(self, to: str, data: bytes) -> int:
        try:
            gas = await self.pool.run(lambda w3: w3.eth.estimate_gas({"from": self.address, "to": to, "data": data}))
        except ContractLogicError as exc:
            raise TxReverted(revert_reason(exc)) from None
        return int(gas)

    async def replay(self, to: str, data: bytes, block: int) -> str:
        """Why a mined transaction failed: the same call against the state at its block."""
        try:
            await self.pool.run(lambda w3: w3.eth.call({"from": self.address, "to": to, "data": data}, block))
        except ContractLogicError as exc:
            return revert_reason(exc)
        except (Web3RPCError, ChainError) as exc:
            return str(exc)[:200]
        return "transaction failed"

    async def _fees(self, w3: AsyncWeb3) -> dict[str, int]:
        latest = await w3.eth.get_block("latest")
        base = latest.get("baseFeePerGas")
        cap = self.max_gas_price
        if base is None:
            price = int(await w3.eth.gas_price)
            if cap and price > cap:
                raise GasPriceAboveCap(f"gas price {price} wei is above -maxGasPrice {cap}")
            return {"gasPrice": price}
        base = int(base)
        if cap and base > cap:
            raise GasPriceAboveCap(f"base fee {base} wei is above -maxGasPrice {cap}")
        tip = int(await w3.eth.max_priority_fee)
        max_fee = 2 * base + tip
        if cap:
            max_fee = min(max_fee, cap)
            tip = min(tip, max_fee - base)
        return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": max(tip, 0)}

    async def _stuck_nonce(self) -> int | None:
        """The lowest nonce of ours that a send gave up on and that is still unmined, or None."""
        if not self._stuck:
            return None
        latest, _ = await self.nonces()
        for n in [n for n in self._stuck if n < latest]:  # mined meanwhile (or replaced)
            del self._stuck[n]
        return min(self._stuck) if self._stuck else None

    def _above(self, fees: dict[str, int], old: dict[str, int]) -> dict[str, int]:
        """Fees that may replace a transaction that paid ``old``: the network's, or ``old`` bumped if higher.
        ``old`` unknown (one found in the pool after a start): the network's bumped."""
        bumped = self._bumped(old or fees)
        if bumped is None:
            raise GasPriceAboveCap("a stuck transaction of ours can only be replaced above -maxGasPrice")
        if set(bumped) != set(fees):
            return bumped
        return {k: max(fees[k], bumped[k]) for k in fees}

    def _bumped(self, fees: dict[str, int]) -> dict[str, int] | None:
        out = {k: v + max(1, -(-v // 8)) for k, v in fees.items()}  # +12.5%, what geth requires at least (10%)
        top = out.get("maxFeePerGas", out.get("gasPrice", 0))
        if self.max_gas_price and top > self.max_gas_price:
            return None
        return out

    async def _sign_and_send(self, tx: dict[str, Any], journal: Journal | None = None) -> bytes:
        signed = self.account.sign_transaction(tx)
        if journal is not None:
            await journal(int(tx["nonce"]), bytes(signed.hash))
        try:
            await self.pool.run(lambda w3: w3.eth.send_raw_transaction(signed.raw_transaction))
        except Web3RPCError as exc:
            text = rpc_message(exc).lower()
            if "already known" not in text and "known transaction" not in text:
                raise
            # this very transaction is in the node's pool already (a send retried after a lost answer): accepted
            log.info("transaction already known to the node", extra={"tx": "0x" + bytes(signed.hash).hex()})
        return bytes(signed.hash)

    async def in_pool(self, tx_hash: bytes) -> bool:
        """Whether the node holds the transaction, not yet mined."""
        try:
            tx = await self.pool.run(lambda w3: w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return tx.get("blockNumber") is None

    async def receipt(self, tx_hash: bytes) -> Any:
        """The transaction's receipt, or None while the node has none."""
        try:
            return await self.pool.run(lambda w3: w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

    async def send(self, to: str, data: bytes, *, what: str,
                   on_sent: Callable[[bytes], Awaitable[None]] | None = None,
                   journal: Journal | None = None,
                   still_needed: Callable[[], Awaitable[bool]] | None = None) -> dict[str, Any]:
        """Send, wait for the receipt and return it; raises TxReverted when the contract refuses.

        ``journal`` is told each signed transaction's (nonce, hash) before it is sent, replacements
        included; ``on_sent`` each hash after it is sent, before its receipt is awaited. After waiting for
        transactions of ours from before a start, ``still_needed`` is asked again (one of those may have done
        this one's work, e.g. redeemed the same ticket): False raises :class:`Superseded` and sends nothing.
        """
        if not self.lease.held():
            raise NotLeaseHolder("another chain instance holds the sender lease")
        gas = self.gas_limit or (await self.estimate(to, data)) * 6 // 5 + 10_000
        async with self._lock:
            for attempt in range(3):
                if self._chain_id is None:
                    self._chain_id = int(await self.pool.run(lambda w3: w3.eth.chain_id))
                if self._nonce is None:
                    # After a start: let our transactions from before it land first (a redemption sent just
                    # before a crash), so this one is not a duplicate the contract would refuse.
                    landed = await self.wait_in_flight(self.tx_timeout)
                    latest, self._nonce = await self.nonces()
                    if not landed:  # ours, still unmined from before the start: the next sends take them over
                        for n in range(latest, self._nonce):
                            self._stuck.setdefault(n, {})
                    if still_needed is not None and not await still_needed():
                        raise Superseded(f"{what}: done by a transaction of ours sent before the start")
                fees = await self.pool.run(self._fees)
                nonce = self._nonce
                stuck = await self._stuck_nonce()
                if stuck is not None:  # replace the stuck one, so nothing queues behind it
                    nonce, fees = stuck, self._above(fees, self._stuck[stuck])
                tx = {"chainId": self._chain_id, "nonce": nonce, "to": to, "data": data, "gas": gas,
                      "value": 0, **fees}
                if "gasPrice" not in fees:
                    tx["type"] = 2
                try:
                    tx_hash = await self._sign_and_send(tx, journal)
                except Web3RPCError as exc:
                    text = str(exc).lower()
                    if "nonce" in text or "underpriced" in text:
                        log.warning("nonce out of step, resynchronizing", extra={"what": what, "attempt": attempt})
                        self._nonce = None
                        self._stuck.clear()
                        continue
                    raise
                if stuck is not None:
                    del self._stuck[stuck]
                    log.warning("stuck transaction replaced by the next one", extra={"what": what, "nonce": stuck})
                else:
                    self._nonce += 1
                break
            else:
                raise TxNotMined(f"{what}: could not place a transaction with a fresh nonce")
        log.info("transaction sent", extra={"what": what, "tx": "0x" + tx_hash.hex(), "nonce": tx["nonce"]})
        hashes = [tx_hash]
        if on_sent:
            await on_sent(tx_hash)
        replacements = 0
        while True:
            receipt = await self._wait(hashes, self.tx_timeout)
            if receipt is not None:
                break
            bumped = self._bumped({k: tx[k] for k in FEE_KEYS if k in tx})
            if replacements >= self.max_replacements or bumped is None:
                latest, _ = await self.nonces()
                if latest > tx["nonce"]:  # mined meanwhile, or replaced by another of ours
                    receipt = await self._wait(hashes, self.poll * 4)
                    if receipt is not None:
                        break
                if latest <= tx["nonce"]:  # still unmined: the next send takes this nonce over
                    self._stuck[int(tx["nonce"])] = {k: int(tx[k]) for k in FEE_KEYS if k in tx}
                raise TxNotMined(f"{what}: no receipt for nonce {tx['nonce']} after {replacements} replacements")
            if not self.lease.held():  # another instance may be sending now: it will see this one in the pool
                raise NotLeaseHolder(f"{what}: lease lost while nonce {tx['nonce']} waits; not replaced")
            tx = {**tx, **bumped}
            replacements += 1
            try:
                new_hash = await self._sign_and_send(tx, journal)
            except Web3RPCError as exc:  # nonce too low: the first one was mined meanwhile
                log.info("replacement not accepted", extra={"what": what, "error": str(exc)[:200]})
                continue
            log.warning("transaction replaced", extra={"what": what, "tx": "0x" + new_hash.hex(),
                                                       "replacement": replacements})
            hashes.append(new_hash)
            if on_sent:
                await on_sent(new_hash)
        if int(receipt["status"]) != 1:
            reason = await self.replay(to, data, int(receipt["blockNumber"]))
            raise TxReverted(reason, tx_hash=bytes(receipt["transactionHash"]))
        return dict(receipt)

    async def _wait(self, hashes: list[bytes], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for h in hashes:
                try:
                    return await self.pool.run(lambda w3, h=h: w3.eth.get_transaction_receipt(h))
                except TransactionNotFound:
                    continue
                except ChainError:  # the nodes are in trouble: asked again after the poll
                    break
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(self.poll)
