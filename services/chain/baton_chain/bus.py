"""Chain data into the ``baton-chain`` KV bucket, the sender cold path, and nonce cleanup per L1 block.

Each poll reads the latest block. A block below the ``head`` already in the
bucket (another instance's node is ahead: a lagging node or a standby) is not
published: chain data never goes backwards. On a new L1 block: ``head``, and the nonce
store's cleanup with ``margin`` blocks behind it (a negotiator replica whose
view lags by less than that still finds every record it needs). On a new block,
and at least every ``CHAIN_REFRESH`` seconds: the round, its block hash, the
gas price, the orchestrator's status and the protocol params. Each sender's
funds are re-read on each new round and every ``CHAIN_REFRESH``, and within a
poll of any TicketBroker event that moves them (a deposit or reserve funded,
an unlock, a withdrawal, a redemption or a reserve claim against it: every new
block's logs are read); the senders are those already in the bucket at start,
those the negotiator asked about on ``baton.chain.sender``, and those of pending
winning tickets.

``eth-usd``: the Chainlink aggregator's ``latestRoundData``, ``decimals`` and
``description`` (``ETH / USD``, or ``USD / ETH`` for an inverted feed), read
hourly as go-livepeer does (``price_feed_interval``) when a feed is
configured. The value carries the feed's own update time, by which pricing
judges staleness. A read that fails (the feed reverts, the node is down, an
answer of 0 or below, a feed not priced against ETH) leaves the last good value
in place, counts ``baton_chain_price_feed_errors``, logs a warning and is
retried after a minute.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable

import msgspec
from eth_utils import to_checksum_address
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from baton_common.errors import BadRequest
from baton_common.pm import CreditEntry
from baton_common.pm_nats import KvNonceStore
from baton_common.schemas import decode, encode
from baton_common.schemas.chain import (
    CHAIN_REFRESH,
    ETH_USD_KEY,
    GAS_PRICE_KEY,
    HEAD_KEY,
    ORCHESTRATOR_KEY,
    PARAMS_KEY,
    ROUND_KEY,
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
    sender_of_key,
)

from .domain import Transcoder
from .eth import Eth
from .metrics import ETH_BALANCE, ETH_USD, ETH_USD_UPDATED, PRICE_FEED_ERRORS, SENDER_REFRESHES, SUGGESTED_GAS_PRICE

__all__ = ["ChainPublisher"]

log = logging.getLogger("baton.chain.bus")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
ETH_USD_REFRESH = 3600.0
"""go-livepeer reads its price feed hourly."""
PRICE_FEED_RETRY = 60.0
MAX_LOG_RANGE = 2000
"""Blocks of TicketBroker logs read at once; after a longer gap every sender is simply re-read."""


class PriceFeedError(Exception):
    """The feed answered, but not with a usable ETH price."""


def eth_is_base(description: str) -> bool:
    """go-livepeer's reading of a feed's description, ``BASE / QUOTE``: True for ETH / x, False for x / ETH."""
    base, slash, quote = description.partition("/")
    base, quote = base.strip().upper(), quote.strip().upper()
    if slash and base == "ETH" and quote:
        return True
    if slash and quote == "ETH" and base:
        return False
    raise PriceFeedError(f"feed description {description[:60]!r} is not a price against ETH (BASE / QUOTE)")


class ChainPublisher:
    def __init__(self, eth: Eth, kv: KeyValue, nonces: KvNonceStore | None, orchestrator: str, *,
                 price_feed: str = "", margin: int = 10, refresh: float = CHAIN_REFRESH,
                 clock: Callable[[], float] = time.time, price_feed_interval: float = ETH_USD_REFRESH,
                 complete: Callable[[list[CreditEntry]], Awaitable[None]] | None = None) -> None:
        self.eth = eth
        self.complete = complete
        """Applies the journaled credits a nonce record still owes before cleanup forgets it."""
        self.kv = kv
        self.nonces = nonces
        self.orchestrator = orchestrator
        self.price_feed = to_checksum_address(price_feed) if price_feed else ""
        self.price_feed_interval = price_feed_interval
        self.margin = margin
        self.refresh = refresh
        self.clock = clock
        self.senders: set[str] = set()
        self.pending: dict[str, int] = {}
        """Face value of each sender's unredeemed winning tickets (the redeemer's, each pass)."""
        self.pending_at = 0.0
        """When the redeemer's last pending set was read (``SenderInfo.pending_at``)."""
        self._l1 = -1
        self._round = -1
        self._cleaned = -1
        self._last_full = 0.0
        self._last_senders = 0.0
        self._last_eth_usd = float("-inf")
        self._hashes_written: set[int] = set()
        self._scanned = -1
        """The last block whose TicketBroker logs were read."""
        self._logs_failing = False
        self._behind = False

    async def load_known_senders(self) -> None:
        try:
            keys = await self.kv.keys()
        except Exception:  # an empty bucket raises NoKeysError
            keys = []
        self.senders.update(s for s in map(sender_of_key, keys) if s)

    async def _published_l1(self) -> int:
        """The L1 block in the bucket's ``head`` (written by any instance), or -1."""
        try:
            entry = await self.kv.get(HEAD_KEY)
            return decode(entry.value or b"", L1Head).l1_block
        except KeyNotFoundError:
            return -1
        except msgspec.DecodeError:  # unreadable: ours replaces it
            return -1

    async def _put(self, key: str, value: object) -> None:
        await self.kv.put(key, encode(value))

    async def poll(self) -> None:
        block = await self.eth.block()
        now = self.clock()
        if block.number != self._scanned:
            await self._scan_senders(block.number, block.l1_number)
        l1 = block.l1_number
        new_block = l1 != self._l1
        full = new_block or now - self._last_full >= self.refresh
        if self.price_feed and now - self._last_eth_usd >= self.price_feed_interval:
            await self._eth_usd({"read_at": now, "block": l1})  # on its own clock, new block or not
        if not full:
            return
        published = await self._published_l1()
        if l1 < published:  # this instance's node lags another instance's: never rewind what others read
            if not self._behind:
                log.warning("the node is behind the chain data already published; publishing resumes when it "
                            "catches up", extra={"block": l1, "published": published})
            self._behind = True
            return
        self._behind = False
        self._l1 = l1
        read = {"read_at": now, "block": l1}
        await self._put(HEAD_KEY, L1Head(l1_block=l1, **read))
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
        await self._put(ROUND_KEY, RoundState(round=current, initialized=initialized, last_initialized_round=last_init,
                                            round_length=length, start_block=start, **read))
        for r in (last_init, last_init - 1):
            if r > 0 and r not in self._hashes_written:
                block_hash = await self.eth.call("RoundsManager.blockHashForRound", r)
                if block_hash != bytes(32):
                    await self._put(round_hash_key(r), RoundHash(round=r, block_hash="0x" + block_hash.hex(), **read))
                    self._hashes_written.add(r)
        gas = await self.eth.gas_price()
        SUGGESTED_GAS_PRICE.set(gas / 1e9)
        await self._put(GAS_PRICE_KEY, GasPrice(suggested_wei=gas, **read))
        transcoder = Transcoder.of(await self.eth.call("BondingManager.getTranscoder", self.orchestrator))
        active = await self.eth.call("BondingManager.isActiveTranscoder", self.orchestrator)
        uri = await self.eth.call("ServiceRegistry.getServiceURI", self.orchestrator)
        await self._put(ORCHESTRATOR_KEY, OrchestratorStatus(
            address=self.orchestrator.lower(), active=active, activation_round=transcoder.activation_round,
            deactivation_round=transcoder.deactivation_round, service_uri=uri, **read))
        pool = await self.eth.call("BondingManager.getTranscoderPoolSize")
        validity = await self.eth.call("TicketBroker.ticketValidityPeriod")
        await self._put(PARAMS_KEY, ProtocolParams(ticket_validity_period=validity, active_pool_size=pool, **read))
        ETH_BALANCE.set(await self.eth.balance(self.orchestrator))
        if current != self._round or now - self._last_senders >= self.refresh:
            self._round = current
            self._last_senders = now
            for sender in sorted(self.senders):
                await self.sender_info(sender, current, read)
        self._last_full = now

    async def _scan_senders(self, number: int, l1: int) -> None:
        """Re-read the known senders that a TicketBroker event since the last scan names."""
        first = self._scanned + 1
        if self._scanned < 0 or not self.senders:
            self._scanned = number  # the first poll re-reads every sender anyway (a new round for us)
            return
        if number - first >= MAX_LOG_RANGE:
            moved = set(self.senders)
        else:
            try:
                moved = await self.eth.senders_moved(first, number) & self.senders
            except Exception as exc:  # a node that refuses eth_getLogs: rounds and CHAIN_REFRESH still re-read
                if not self._logs_failing:
                    log.warning("TicketBroker logs not read; sender funds follow rounds and refreshes only",
                                extra={"from": first, "to": number, "error": str(exc)[:200]})
                self._logs_failing = True
                return
            self._logs_failing = False
        if moved:
            current = await self.eth.call("RoundsManager.currentRound")
            read = {"read_at": self.clock(), "block": l1}
            for sender in sorted(moved):
                await self.sender_info(sender, current, read)
            SENDER_REFRESHES.inc(len(moved))
            log.info("sender funds moved on chain", extra={"senders": sorted(moved)[:20], "block": number})
        self._scanned = number

    async def sender_info(self, sender: str, round_: int, read: dict) -> SenderInfo:
        """Read ``sender``'s funds and publish them. A sender with neither deposit nor reserve is dropped from
        the bucket and from the senders re-read each round: throwaway keys, which any client makes for free,
        cannot grow either (the negotiator caches the unfunded answer it got from :meth:`lookup`)."""
        (deposit, withdraw_round), (remaining, claimed) = await self.eth.call(
            "TicketBroker.getSenderInfo", to_checksum_address(sender))
        by_us = await self.eth.call("TicketBroker.claimedReserve", to_checksum_address(sender), self.orchestrator)
        lagging = read.get("block", 0) < await self._published_l1()
        # The redeemer's pending set as it stands after the awaits (a pass may have rewritten it meanwhile).
        info = SenderInfo(sender=sender.lower(), deposit=deposit, reserve=remaining, withdraw_round=withdraw_round,
                          reserve_claimed=claimed, claimed_by_us=by_us, round=round_,
                          pending=self.pending.get(sender.lower(), 0), pending_at=self.pending_at, **read)
        if lagging:
            return info  # a node behind what is published: neither overwrite newer funds nor drop a sender
        if deposit or remaining:
            await self._put(sender_key(sender), info)
            pending, at = self.pending.get(sender.lower(), 0), self.pending_at
            if (pending, at) != (info.pending, info.pending_at):  # a pass's rewrite raced this put: redo it
                info = msgspec.structs.replace(info, pending=pending, pending_at=at)
                await self._put(sender_key(sender), info)
        elif sender.lower() in self.senders:
            self.senders.discard(sender.lower())
            with contextlib.suppress(Exception):  # already gone; the next read of a funded one writes it again
                await self.kv.delete(sender_key(sender))
        return info

    async def lookup(self, request: SenderLookup) -> SenderInfo:
        """The cold path: a sender the negotiator has not seen in the bucket."""
        if not ADDRESS.match(request.sender):
            raise BadRequest(f"sender must be a 0x-prefixed 20-byte hex address, got {request.sender[:60]!r}")
        sender = request.sender.lower()
        block = await self.eth.block()
        current = await self.eth.call("RoundsManager.currentRound")
        info = await self.sender_info(sender, current, {"read_at": self.clock(), "block": block.l1_number})
        if info.deposit or info.reserve:
            self.senders.add(sender)
        return info

    def track(self, sender: str) -> None:
        self.senders.add(sender.lower())

    async def set_pending(self, pending: dict[str, int], at: float = 0.0) -> None:
        """The redeemer's pending face value per sender, from the winners read at ``at``; a published sender
        whose value changed is rewritten at once (its funds as last read), so a quote never counts a winner
        already redeemed, or misses one (a winner stored after ``at`` the negotiator that stored it adds)."""
        # A sender with winners pending is rewritten each pass even when its sum did not change (one redeemed,
        # one as large new): its pending_at must move on, or the negotiator would count the new one twice.
        changed = {s for s in pending.keys() | self.pending.keys()
                   if pending.get(s, 0) != self.pending.get(s, 0) or pending.get(s, 0)}
        self.pending = {s: v for s, v in pending.items() if v}
        self.pending_at = max(self.pending_at, at)
        for sender in sorted(changed):
            try:
                entry = await self.kv.get(sender_key(sender))
                info = decode(entry.value or b"", SenderInfo)
            except Exception:  # not published (unfunded, or not read yet): its next read carries the value
                continue
            with contextlib.suppress(Exception):  # rewritten meanwhile: that write carried self.pending already
                await self.kv.update(sender_key(sender), encode(msgspec.structs.replace(
                    info, pending=self.pending.get(sender, 0), pending_at=self.pending_at)), last=entry.revision)

    async def _eth_usd(self, read: dict) -> None:
        now = self.clock()
        try:
            _, answer, _, updated_at, _ = await self.eth.call("PriceFeed.latestRoundData", to=self.price_feed)
            decimals = await self.eth.call("PriceFeed.decimals", to=self.price_feed)
            base = eth_is_base(await self.eth.call("PriceFeed.description", to=self.price_feed))
            if answer <= 0 or updated_at <= 0:
                raise PriceFeedError(f"answer {answer} updated at {updated_at}: no price")
        except Exception as exc:  # reverts, RPC errors, bad answers: the last good value stays
            PRICE_FEED_ERRORS.inc()
            reason = str(exc)[:200] if isinstance(exc, PriceFeedError) else type(exc).__name__
            log.warning("price feed read failed; eth-usd keeps its last good value",
                        extra={"feed": self.price_feed, "error": reason})
            self._last_eth_usd = now - self.price_feed_interval + min(PRICE_FEED_RETRY, self.price_feed_interval)
            return
        await self._put(ETH_USD_KEY, EthUsdRate(feed=self.price_feed.lower(), answer=answer, decimals=decimals,
                                                updated_at=float(updated_at), eth_is_base=base, **read))
        ETH_USD.set(answer / 10**decimals if base else 10**decimals / answer)
        ETH_USD_UPDATED.set(updated_at)
        self._last_eth_usd = now
