"""Chain data into the ``baton-chain`` KV bucket, the sender cold path, and nonce cleanup per L1 block.

Each poll reads the latest block. On a new L1 block: ``head``, and the nonce
store's cleanup with ``margin`` blocks behind it (a negotiator replica whose
view lags by less than that still finds every record it needs). On a new block,
and at least every ``CHAIN_REFRESH`` seconds: the round, its block hash, the
gas price, the orchestrator's status and the protocol params. Each sender's
funds are re-read on each new round and every ``CHAIN_REFRESH``; the senders
are those already in the bucket at start, those the negotiator asked about on
``baton.chain.sender``, and those of pending winning tickets. ``eth-usd`` is
read hourly, as go-livepeer does, when a price feed is configured.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from eth_utils import to_checksum_address
from nats.js.kv import KeyValue

from baton_common.errors import BadRequest
from baton_common.pm import CreditEntry
from baton_common.pm_nats import KvNonceStore
from baton_common.schemas import encode
from baton_common.schemas.chain import (
    CHAIN_REFRESH,
    EthUsdRate,
    GasPrice,
    L1Head,
    OrchestratorStatus,
    ProtocolParams,
    RoundHash,
    RoundState,
    SenderInfo,
    SenderLookup,
    round_hash_key,
    sender_key,
)

from .domain import Transcoder
from .eth import Eth
from .metrics import ETH_BALANCE, SUGGESTED_GAS_PRICE

__all__ = ["ChainPublisher"]

log = logging.getLogger("baton.chain.bus")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
ETH_USD_REFRESH = 3600.0


class ChainPublisher:
    def __init__(self, eth: Eth, kv: KeyValue, nonces: KvNonceStore | None, orchestrator: str, *,
                 price_feed: str = "", margin: int = 10, refresh: float = CHAIN_REFRESH,
                 clock: Callable[[], float] = time.time,
                 complete: Callable[[list[CreditEntry]], Awaitable[None]] | None = None) -> None:
        self.eth = eth
        self.complete = complete
        """Applies the journaled credits a nonce record still owes before cleanup forgets it."""
        self.kv = kv
        self.nonces = nonces
        self.orchestrator = orchestrator
        self.price_feed = price_feed
        self.margin = margin
        self.refresh = refresh
        self.clock = clock
        self.senders: set[str] = set()
        self._l1 = -1
        self._round = -1
        self._cleaned = -1
        self._last_full = 0.0
        self._last_senders = 0.0
        self._last_eth_usd = -ETH_USD_REFRESH
        self._hashes_written: set[int] = set()

    async def load_known_senders(self) -> None:
        try:
            keys = await self.kv.keys()
        except Exception:  # an empty bucket raises NoKeysError
            keys = []
        self.senders.update(k.removeprefix("sender.") for k in keys if k.startswith("sender."))

    async def _put(self, key: str, value: object) -> None:
        await self.kv.put(key, encode(value))

    async def poll(self) -> None:
        block = await self.eth.block()
        now = self.clock()
        l1 = block.l1_number
        new_block = l1 != self._l1
        full = new_block or now - self._last_full >= self.refresh
        if not full:
            return
        self._l1 = l1
        read = {"read_at": now, "block": l1}
        await self._put("head", L1Head(l1_block=l1, **read))
        if new_block and self.nonces is not None and l1 - self.margin > self._cleaned:
            self._cleaned = l1 - self.margin
            if self._cleaned > 0:
                dropped = await self.nonces.cleanup(self._cleaned, self.complete)
                if dropped:
                    log.info("nonce records cleaned up", extra={"block": self._cleaned, "dropped": dropped})
        current = await self.eth.call("RoundsManager.currentRound")
        initialized = await self.eth.call("RoundsManager.currentRoundInitialized")
        last_init = await self.eth.call("RoundsManager.lastInitializedRound")
        length = await self.eth.call("RoundsManager.roundLength")
        start = await self.eth.call("RoundsManager.currentRoundStartBlock")
        await self._put("round", RoundState(round=current, initialized=initialized, last_initialized_round=last_init,
                                            round_length=length, start_block=start, **read))
        for r in (last_init, last_init - 1):
            if r > 0 and r not in self._hashes_written:
                block_hash = await self.eth.call("RoundsManager.blockHashForRound", r)
                if block_hash != bytes(32):
                    await self._put(round_hash_key(r), RoundHash(round=r, block_hash="0x" + block_hash.hex(), **read))
                    self._hashes_written.add(r)
        gas = await self.eth.gas_price()
        SUGGESTED_GAS_PRICE.set(gas / 1e9)
        await self._put("gas-price", GasPrice(suggested_wei=gas, **read))
        transcoder = Transcoder.of(await self.eth.call("BondingManager.getTranscoder", self.orchestrator))
        active = await self.eth.call("BondingManager.isActiveTranscoder", self.orchestrator)
        uri = await self.eth.call("ServiceRegistry.getServiceURI", self.orchestrator)
        await self._put("orchestrator", OrchestratorStatus(
            address=self.orchestrator.lower(), active=active, activation_round=transcoder.activation_round,
            deactivation_round=transcoder.deactivation_round, service_uri=uri, **read))
        pool = await self.eth.call("BondingManager.getTranscoderPoolSize")
        validity = await self.eth.call("TicketBroker.ticketValidityPeriod")
        await self._put("params", ProtocolParams(ticket_validity_period=validity, active_pool_size=pool, **read))
        ETH_BALANCE.set(await self.eth.balance(self.orchestrator))
        if current != self._round or now - self._last_senders >= self.refresh:
            self._round = current
            self._last_senders = now
            for sender in sorted(self.senders):
                await self.sender_info(sender, current, read)
        if self.price_feed and now - self._last_eth_usd >= ETH_USD_REFRESH:
            await self._eth_usd(read)
        self._last_full = now

    async def sender_info(self, sender: str, round_: int, read: dict) -> SenderInfo:
        (deposit, withdraw_round), (remaining, claimed) = await self.eth.call(
            "TicketBroker.getSenderInfo", to_checksum_address(sender))
        by_us = await self.eth.call("TicketBroker.claimedReserve", to_checksum_address(sender), self.orchestrator)
        info = SenderInfo(sender=sender.lower(), deposit=deposit, reserve=remaining, withdraw_round=withdraw_round,
                          reserve_claimed=claimed, claimed_by_us=by_us, round=round_, **read)
        await self._put(sender_key(sender), info)
        return info

    async def lookup(self, request: SenderLookup) -> SenderInfo:
        """The cold path: a sender the negotiator has not seen in the bucket."""
        if not ADDRESS.match(request.sender):
            raise BadRequest(f"sender must be a 0x-prefixed 20-byte hex address, got {request.sender[:60]!r}")
        sender = request.sender.lower()
        block = await self.eth.block()
        current = await self.eth.call("RoundsManager.currentRound")
        info = await self.sender_info(sender, current, {"read_at": self.clock(), "block": block.l1_number})
        self.senders.add(sender)
        return info

    def track(self, sender: str) -> None:
        self.senders.add(sender.lower())

    async def _eth_usd(self, read: dict) -> None:
        try:
            _, answer, _, updated_at, _ = await self.eth.call("PriceFeed.latestRoundData", to=self.price_feed)
            decimals = await self.eth.call("PriceFeed.decimals", to=self.price_feed)
        except Exception as exc:  # a feed that does not answer leaves eth-usd to go stale
            log.warning("price feed read failed", extra={"feed": self.price_feed, "error": type(exc).__name__})
            self._last_eth_usd = self.clock() - ETH_USD_REFRESH + 60
            return
        await self._put("eth-usd", EthUsdRate(feed=self.price_feed, answer=answer, decimals=decimals,
                                              updated_at=float(updated_at), **read))
        self._last_eth_usd = self.clock()
