"""Composition root of the chain service: chain data, rewards and ticket redemption.

Offchain (the default) it needs no Ethereum node; with only an -ethUrl it
reports the node's chain id and head block. On-chain (any other -network) it
loads the orchestrator's key, resolves the protocol through the Controller,
and runs four loops: the sender lease, chain data (with nonce cleanup), reward
and redemption. Only the lease holder sends transactions; every instance
publishes chain data and answers sender lookups.

At start, a -network with a known chain id (go-livepeer's four) is checked
against the node: a definite mismatch is a configuration error (exit 2; found
later, when the node was down at start, exit 1). A loop task that dies of an
unexpected error stops the process (exit 1, so its supervisor restarts it),
rather than leaving it running with its probes green.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

import httpx

from baton_common.errors import ConfigError, ServiceError
from baton_common.pm import Balances, credit_completer
from baton_common.pm_nats import KvBalanceStore, KvNonceStore, KvWinningTickets
from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import Check
from baton_common.schemas.chain import (
    CHAIN,
    CHAIN_LEASE,
    CHAIN_LEASE_TTL,
    CHAIN_TXS,
    SENDER_LOOKUP_SUBJECT,
    SenderInfo,
    SenderLookup,
)
from baton_common.schemas.payments import BALANCES, NONCES, WINNERS

from .bus import ChainPublisher
from .chain import EthHealth
from .config import CHAIN_IDS, ChainSettings
from .errors import ChainError
from .eth import Eth, RpcPool, url_label
from .journal import TxJournal
from .keystore import load_account
from .lease import SenderLease
from .metrics import LEASE_HELD, MAX_GAS_PRICE, RPC_FAILOVERS
from .redeemer import Redeemer, run_redeemer
from .reward import RewardService, run_reward
from .tx import TxSender

__all__ = ["Chain", "main"]

log = logging.getLogger("baton.chain")


class NotReady(ServiceError):
    code = "chain_not_ready"
    status_code = 503


class ChainIdMismatch(Exception):
    """The node is on another chain than -network: fatal, never retried."""


class Chain(ServiceBase[ChainSettings]):
    name = "chain"

    def __init__(self, settings: ChainSettings) -> None:
        super().__init__(settings)
        self.lease: SenderLease | None = None
        self.publisher: ChainPublisher | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.crashed = ""
        self.ctx: ServiceContext | None = None
        self._check_chain_id_now()

    def _chain_id_error(self, index: int, chain_id: int) -> str:
        s = self.settings
        return (f"BATON_NETWORK (-network) {s.network} is chain id {CHAIN_IDS[s.network]}, but the Ethereum node at "
                f"BATON_CHAIN_ETH_URL (-ethUrl) {url_label(index, s.eth_urls[index])} is chain id {chain_id}")

    def _check_chain_id_now(self) -> None:
        """A definite mismatch between -network and the node is a configuration error (exit 2). A node that
        does not answer now is checked again by the chain task once it does."""
        s = self.settings
        if s.network not in CHAIN_IDS:
            return
        for index, url in enumerate(s.eth_urls):
            try:
                body = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                                  timeout=min(s.rpc_timeout, 5.0)).json()
                chain_id = int(body["result"], 16)
            except Exception:  # unreachable, refused, not JSON-RPC: the chain task retries
                continue
            if chain_id != CHAIN_IDS[s.network]:
                raise ConfigError(self._chain_id_error(index, chain_id))
            return

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self.tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.crashed = f"{task.get_name()}: {type(exc).__name__}: {str(exc)[:300]}"
        log.error("chain task died; exiting so the supervisor restarts the service",
                  extra={"task": task.get_name(), "error": self.crashed}, exc_info=exc)
        if self.ctx is not None:
            self.ctx.fatal(f"chain task {self.crashed}")

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        s = self.settings
        self.http = httpx.AsyncClient(timeout=3.0)
        self.resolved = asyncio.Event()
        if s.network == "offchain":
            if s.eth_urls:
                ctx.probe("eth", EthHealth(s.eth_urls[0], self.http).check, interval=10.0)
            return
        account = load_account(s.eth_keystore_path, s.eth_password, s.eth_acct_addr)
        MAX_GAS_PRICE.set(s.max_gas_price / 1e9)
        self.pool = RpcPool(s.eth_urls, timeout=s.rpc_timeout, on_failover=lambda i: RPC_FAILOVERS.inc())
        self.eth = Eth(self.pool, s.controller)
        bus = ctx.bus
        chain_kv = await bus.bind(CHAIN)
        nonces = KvNonceStore(await bus.bind(NONCES))
        winners = KvWinningTickets(await bus.bind(WINNERS))
        self.lease = SenderLease(await bus.bind(CHAIN_LEASE), ctx.instance, account.address, CHAIN_LEASE_TTL)
        sender = TxSender(self.pool, account, self.lease, max_gas_price=s.max_gas_price, tx_timeout=s.tx_timeout,
                          max_replacements=s.max_transaction_replacements, poll=min(s.poll_interval / 4, 0.5))
        balances = Balances(KvBalanceStore(await bus.bind(BALANCES)))
        self.publisher = ChainPublisher(self.eth, chain_kv, nonces, account.address, price_feed=s.price_feed,
                                        price_feed_interval=s.price_feed_interval, margin=s.nonce_cleanup_margin,
                                        complete=credit_completer(balances, nonces))
        await self.publisher.load_known_senders()
        reward = RewardService(self.eth, sender, reward=s.reward, initialize_round=s.initialize_round,
                               attempts=s.reward_attempts, backoff=s.reward_backoff,
                               max_backoff=s.reward_max_backoff)
        redeemer = Redeemer(self.eth, sender, winners, bytes.fromhex(account.address[2:]),
                            redeem_gas=s.redeem_gas_used, on_sender=self.publisher.track,
                            on_pending=self.publisher.set_pending,
                            journal=TxJournal(await bus.bind(CHAIN_TXS), account.address))
        ctx.probe("eth", self.pool.check, interval=10.0)
        await bus.serve(SENDER_LOOKUP_SUBJECT, SenderLookup, self._lookup)
        reward_mode = {True: "on", False: "off", None: "while registered"}[s.reward]
        log.info("on-chain", extra={"account": account.address, "network": s.network, "controller": s.controller,
                                    "rpc_urls": len(s.eth_urls), "reward": reward_mode,
                                    "price_feed": s.price_feed or "none"})
        self._spawn(self.lease.run(), "lease")
        self._spawn(self._run(reward, redeemer), "chain")

    async def _lookup(self, request: SenderLookup) -> SenderInfo:
        if self.publisher is None or not self.resolved.is_set():
            raise NotReady("the chain service has not reached its Ethereum node yet")
        try:
            return await self.publisher.lookup(request)
        except ChainError as exc:
            raise NotReady(f"Ethereum node unavailable: {exc.code}") from None

    async def _run(self, reward: RewardService, redeemer: Redeemer) -> None:
        """Resolve the contracts (retrying while the node is down), then run the loops."""
        delay = 1.0
        expected = CHAIN_IDS.get(self.settings.network)
        while True:
            try:
                if expected is not None:
                    chain_id = int(await self.pool.run(lambda w3: w3.eth.chain_id))
                    if chain_id != expected:
                        raise ChainIdMismatch(self._chain_id_error(self.pool.current, chain_id))
                addresses = await self.eth.resolve()
                break
            except ChainError as exc:
                log.warning("cannot resolve the protocol contracts yet", extra={"error": str(exc)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        log.info("protocol contracts resolved", extra={"contracts": addresses})
        self.resolved.set()
        interval = self.settings.poll_interval
        self._spawn(self._publish(interval), "publish")
        self._spawn(run_reward(reward, interval), "reward")
        if self.settings.redeem:
            self._spawn(run_redeemer(redeemer, interval), "redeem")

    async def _publish(self, interval: float) -> None:
        assert self.publisher is not None
        while True:
            try:
                await self.publisher.poll()
            except ChainError as exc:
                log.warning("chain data not refreshed", extra={"error": str(exc)[:300]})
            except Exception:
                log.exception("chain data not refreshed")
            LEASE_HELD.set(1 if self.lease and self.lease.held() else 0)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.lease is not None:
            await self.lease.release()
            await self.pool.close()
        await self.http.aclose()

    def checks(self) -> dict[str, Check]:
        checks = {"network": Check(ok=True, detail=self.settings.network)}
        if self.crashed:
            checks["chain_tasks"] = Check(ok=False, detail=f"died: {self.crashed}", required=True)
        if self.lease is not None:
            checks["sender_lease"] = Check(ok=True, detail="held" if self.lease.held() else "standby")
        return checks


def main() -> None:
    run_service("chain", ChainSettings, Chain)


if __name__ == "__main__":
    main()
