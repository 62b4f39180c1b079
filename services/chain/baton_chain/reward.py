"""Reward every round the orchestrator is active, exactly once, and initialize rounds on request.

State lives on chain, not here: each check reads the transcoder's
``lastRewardRound``, so a restart neither calls twice nor skips a round that is
still current. A failed call is retried until the round ends, with doubling
backoff capped at ``max_backoff`` (the RPC pool fails over meanwhile): a round
is about 19 hours on Arbitrum, so a problem of minutes (fees above
-maxGasPrice, a flaky node) never forfeits it. After ``attempts`` failed tries
the alert gauge goes up (and the error is logged) until a try succeeds or the
round ends. A round that ended active and unrewarded counts as
missed. Before its first send after a start, the service waits for any of its
own transactions still in the node's pool (a reward sent just before a crash).

``-reward`` unset: reward is on while the account is a registered orchestrator
(go-livepeer checks that once at start; here each due round asks again, so an
orchestrator registered after the start is rewarded without a restart).
``-reward=false`` never calls it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .abi import FUNCTIONS
from .domain import Transcoder, pool_hints, reward_amount, should_reward
from .errors import ChainError, GasPriceAboveCap, NotLeaseHolder, TxReverted
from .eth import Eth
from .metrics import LAST_REWARD_ROUND, REWARD_ALERT, REWARD_ERRORS, ROUNDS_MISSED
from .tx import TxSender

__all__ = ["RewardService", "run_reward"]

log = logging.getLogger("baton.chain.reward")


class RewardService:
    def __init__(self, eth: Eth, sender: TxSender, *, reward: bool | None, initialize_round: bool,
                 attempts: int, backoff: float, max_backoff: float = 300.0) -> None:
        self.eth = eth
        self.sender = sender
        self.address = sender.address
        self.reward = reward
        self.initialize_round = initialize_round
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._round = -1
        self._tries = 0
        self._next_try = 0.0
        self._was_active: dict[int, bool] = {}
        self._registered: bool | None = None

    async def check(self) -> None:
        """One look at the chain: initialize the round, then reward if due. Call on every poll."""
        at = (await self.eth.block()).number  # every read of one check sees the same block

        async def read(fn: str, *args: object) -> object:
            return await self.eth.call(fn, *args, block=at)

        current = await read("RoundsManager.currentRound")
        initialized = await read("RoundsManager.currentRoundInitialized")
        if current != self._round:
            await self._round_changed(current)
        if not initialized:
            if self.initialize_round and self.sender.lease.held():
                await self._initialize(current)  # reward follows on the next check
            return
        transcoder = Transcoder.of(await read("BondingManager.getTranscoder", self.address))
        LAST_REWARD_ROUND.set(transcoder.last_reward_round)
        active = await read("BondingManager.isActiveTranscoder", self.address)
        self._was_active[current] = active
        last_initialized = await read("RoundsManager.lastInitializedRound")
        if self.reward is False or not should_reward(transcoder, active, last_initialized, current):
            return
        if self.reward is None and not await self._registered_now(read):
            return
        if time.monotonic() < self._next_try or not self.sender.lease.held():
            return
        self._tries += 1
        try:
            await self._call_reward(transcoder, current)
        except NotLeaseHolder:
            self._tries -= 1
        except (ChainError, Exception) as exc:  # every failure is retried within the round
            REWARD_ERRORS.inc()
            reason = exc.reason if isinstance(exc, TxReverted) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, GasPriceAboveCap):
                reason = str(exc)
            delay = min(self.backoff * 2 ** min(self._tries - 1, 30), self.max_backoff)
            self._next_try = time.monotonic() + delay
            if self._tries >= self.attempts:
                REWARD_ALERT.set(1)
                log.error("reward failing; retried until the round ends",
                          extra={"round": current, "tries": self._tries, "error": reason[:300],
                                 "next_try_s": delay})
            else:
                log.warning("reward failed, will retry", extra={"round": current, "try": self._tries,
                                                                "error": reason[:300]})
        else:
            LAST_REWARD_ROUND.set(current)
            REWARD_ALERT.set(0)

    async def _registered_now(self, read: Callable[..., Awaitable[object]]) -> bool:
        """-reward unset: whether the account is a registered orchestrator (logged when that changes)."""
        registered = bool(await read("BondingManager.isRegisteredTranscoder", self.address))
        if registered != self._registered:
            log.info("reward " + ("on: the account is a registered orchestrator" if registered else
                                  "off: the account is not a registered orchestrator (-reward unset)"),
                     extra={"account": self.address})
            self._registered = registered
        return registered

    async def _round_changed(self, current: int) -> None:
        previous = self._round
        self._round, self._tries, self._next_try = current, 0, 0.0
        REWARD_ALERT.set(0)
        if previous >= 0 and self._was_active.get(previous):
            transcoder = Transcoder.of(await self.eth.call("BondingManager.getTranscoder", self.address))
            if transcoder.last_reward_round < previous:
                ROUNDS_MISSED.inc()
                log.error("round ended without reward", extra={"round": previous})
        self._was_active = {r: a for r, a in self._was_active.items() if r >= current - 1}

    async def _initialize(self, current: int) -> bool:
        """initializeRound; True once the round is initialized (by us or, meanwhile, by someone else)."""
        fn = "RoundsManager.initializeRound"
        try:
            receipt = await self.sender.send(self.eth.addresses["RoundsManager"], self.eth_data(fn),
                                             what="initializeRound")
            log.info("round initialized", extra={"round": current,
                                                 "tx": "0x" + bytes(receipt["transactionHash"]).hex()})
            return True
        except TxReverted as exc:  # someone else did it first
            log.info("initializeRound refused", extra={"round": current, "reason": exc.reason,
                                                       "tx": "0x" + exc.tx_hash.hex() if exc.tx_hash else ""})
        except ChainError as exc:
            log.warning("initializeRound failed", extra={"round": current, "error": str(exc)[:300]})
        return False

    @staticmethod
    def eth_data(fn: str, *args: object) -> bytes:
        return FUNCTIONS[fn].data(*args)

    async def hints(self, transcoder: Transcoder) -> tuple[str, str]:
        """Spec 5: the pool re-sorted with this orchestrator's stake after its reward."""
        pool: list[tuple[str, int]] = []
        node = await self.eth.call("BondingManager.getFirstTranscoderInPool")
        size = await self.eth.call("BondingManager.getTranscoderPoolSize")
        while int(node, 16) != 0 and len(pool) < size:
            pool.append((node, await self.eth.call("BondingManager.transcoderTotalStake", node)))
            node = await self.eth.call("BondingManager.getNextTranscoderInPool", node)
        max_size = await self.eth.call("BondingManager.getTranscoderPoolMaxSize")
        mintable = await self.eth.call("Minter.currentMintableTokens")
        total_bonded = await self.eth.call("BondingManager.getTotalBonded")
        if total_bonded == 0:
            raise ChainError("no rewards to be minted")
        pool_entry = await self.eth.call("BondingManager.getTranscoderEarningsPoolForRound", self.address,
                                         transcoder.last_active_stake_update_round)
        stake = await self.eth.call("BondingManager.transcoderTotalStake", self.address)
        new_stake = stake + reward_amount(mintable, pool_entry[0], total_bonded)
        return pool_hints(self.address, new_stake, pool, max_size)

    async def _call_reward(self, transcoder: Transcoder, current: int) -> None:
        # after a start only: a transaction of ours still pending then may be a reward (a stuck one later is
        # taken over by the sender's next send, so waiting for it would only delay the reward)
        if not getattr(self.sender, "started", False) and not await self.sender.wait_in_flight(self.sender.tx_timeout):
            raise ChainError("an earlier transaction of ours is still pending")
        # after waiting, the chain may show a reward we sent before a restart
        fresh = Transcoder.of(await self.eth.call("BondingManager.getTranscoder", self.address))
        if fresh.last_reward_round >= current:
            log.info("reward already claimed this round", extra={"round": current})
            return
        prev, nxt = await self.hints(fresh)
        data = self.eth_data("BondingManager.rewardWithHint", prev, nxt)
        receipt = await self.sender.send(self.eth.addresses["BondingManager"], data, what="reward")
        log.info("reward claimed", extra={"round": current, "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
                                          "hints": [prev, nxt]})


async def run_reward(service: RewardService, interval: float) -> None:
    while True:
        try:
            await service.check()
        except ChainError as exc:
            log.warning("reward check failed", extra={"error": str(exc)[:300]})
        except Exception:
            log.exception("reward check failed")
        await asyncio.sleep(interval)
