"""The payment core's ``ChainData`` port over the chain service's ``baton-chain`` KV (schemas/chain.py).

Every answer comes from the watched copy. A value missing or read longer ago
than ``CHAIN_MAX_AGE`` is refused (``ChainUnavailable``: the negotiator is not
ready and says so). A sender not in the bucket yet costs one cold-path request
on ``baton.chain.sender``; the chain service answers and keeps its key fresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from baton_common.errors import BusError
from baton_common.pm import ZERO_HASH, SignedTicket, WinnerRecord, WinnerSettled, WinningTickets
from baton_common.pm import SenderInfo as PmSenderInfo
from baton_common.schemas.chain import (
    CHAIN_MAX_AGE,
    ChainValue,
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

from .errors import ChainUnavailable
from .state import KvMirror

__all__ = ["KvChainData", "NotedWinners", "REQUIRED_KEYS"]

REQUIRED_KEYS = {"head": L1Head, "round": RoundState, "gas-price": GasPrice, "orchestrator": OrchestratorStatus,
                 "params": ProtocolParams}
SENDER_LOOKUP_TIMEOUT = 3.0

Lookup = Callable[[SenderLookup], Awaitable[SenderInfo]]


PENDING_GRACE = 120.0
"""A winner stored here is forgotten once a pending set read this long after it was seen: a value read
earlier may still arrive late (two chain replicas, a racing refresh) and must not lose it."""
MAX_STORED_PER_SENDER = 10_000
LOOKUP_REUSE = 5.0
"""Seconds a cold-path answer stands in for the bucket's copy (which the chain service puts meanwhile)."""
MAX_LOOKED_UP = 10_000


class KvChainData:
    def __init__(self, mirror: KvMirror[ChainValue], lookup: Lookup, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._mirror = mirror
        self._lookup = lookup
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[SenderInfo]] = {}
        self._looked_up: dict[str, SenderInfo] = {}
        """Cold-path answers, until the bucket's copy arrives (one quote reads a sender several times)."""
        self._stored: dict[bytes, list[tuple[float, int]]] = {}
        """Winners this replica stored, per sender: (when, face value), until pending sets read later count them."""
        self._newest: dict[bytes, float] = {}
        """The latest ``pending_at`` seen for each sender in ``_stored``."""

    def note_winner(self, sender: bytes, face_value: int) -> None:
        """A winning ticket of ``sender`` this replica just stored: it counts in ``pending_redemptions`` at once,
        as go-livepeer's sender monitor adds a queued winner, not only once the redeemer's next pass
        publishes it."""
        entries = self._stored.setdefault(sender, [])
        entries.append((self._clock(), face_value))
        if len(entries) > MAX_STORED_PER_SENDER:
            del entries[0]

    def _stored_since(self, sender: bytes, since: float) -> int:
        """Face value of the winners stored here after ``since`` (the pending set's read time): those the
        set does not count yet. Kept until a set read ``PENDING_GRACE`` after them was seen, not just one
        read after them: an older value may still be published after a newer one."""
        entries = self._stored.get(sender)
        if not entries:
            return 0
        newest = self._newest[sender] = max(self._newest.get(sender, 0.0), since)
        entries[:] = [(at, face) for at, face in entries if at > newest - PENDING_GRACE]
        if not entries:
            del self._stored[sender]
            del self._newest[sender]
        return sum(face for at, face in entries if at > since)

    def _get(self, key: str, type_: type) -> ChainValue:  # noqa: ANN401 - one of the union
        value = self._mirror.values.get(key)
        if not isinstance(value, type_):
            raise ChainUnavailable(f"chain data {key!r} is missing")
        age = self._clock() - value.read_at
        if age > CHAIN_MAX_AGE:
            raise ChainUnavailable(f"chain data {key!r} is stale ({age:.0f} s old)")
        return value

    def status(self) -> str:
        """'' when every value a quote needs is present and fresh, else what is not."""
        problems = []
        for key, type_ in REQUIRED_KEYS.items():
            try:
                self._get(key, type_)
            except ChainUnavailable as exc:
                problems.append(exc.message)
        return "; ".join(problems)

    async def last_initialized_round(self) -> int:
        return self._get("round", RoundState).last_initialized_round  # type: ignore[attr-defined]

    async def round_block_hash(self, round_: int) -> bytes:
        value = self._mirror.values.get(round_hash_key(round_))
        if not isinstance(value, RoundHash):
            return ZERO_HASH
        raw = bytes.fromhex(value.block_hash.removeprefix("0x"))
        return raw if len(raw) == 32 else ZERO_HASH

    async def last_seen_l1_block(self) -> int:
        return self._get("head", L1Head).l1_block  # type: ignore[attr-defined]

    async def _sender(self, sender: bytes) -> SenderInfo:
        address = "0x" + sender.hex()
        value = self._mirror.values.get(sender_key(address))
        if isinstance(value, SenderInfo) and self._clock() - value.read_at <= CHAIN_MAX_AGE:
            self._looked_up.pop(address, None)
            return value
        answer = self._looked_up.get(address)
        if answer is not None and self._clock() - answer.read_at <= LOOKUP_REUSE:
            return answer
        # The cold path: one request per sender at a time, whoever asks meanwhile waits for it.
        pending = self._inflight.get(address)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(SenderLookup(sender=address)))
            self._inflight[address] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(address, None))
        try:
            answer = await asyncio.shield(pending)
        except BusError as exc:
            raise ChainUnavailable(f"chain cannot tell the funds of sender {address}: {exc.message}") from None
        if len(self._looked_up) >= MAX_LOOKED_UP:
            now = self._clock()
            self._looked_up = {a: i for a, i in self._looked_up.items() if now - i.read_at <= LOOKUP_REUSE}
            if len(self._looked_up) >= MAX_LOOKED_UP:
                self._looked_up.pop(next(iter(self._looked_up)))
        self._looked_up[address] = answer
        return answer

    async def sender_info(self, sender: bytes) -> PmSenderInfo:
        info = await self._sender(sender)
        return PmSenderInfo(deposit=info.deposit, withdraw_round=info.withdraw_round,
                            reserve_funds_remaining=info.reserve,
                            reserve_claimed_in_current_round=info.reserve_claimed)

    async def claimed_reserve(self, sender: bytes, claimant: bytes) -> int:
        return (await self._sender(sender)).claimed_by_us

    async def active_pool_size(self) -> int:
        return self._get("params", ProtocolParams).active_pool_size  # type: ignore[attr-defined]

    async def is_active_orchestrator(self, address: bytes, round_: int) -> bool:
        status = self._get("orchestrator", OrchestratorStatus)
        assert isinstance(status, OrchestratorStatus)
        if status.address.lower() != "0x" + address.hex():
            return False
        if status.activation_round or status.deactivation_round:
            return status.activation_round <= round_ < status.deactivation_round
        return status.active

    async def gas_price(self) -> int:
        return self._get("gas-price", GasPrice).suggested_wei  # type: ignore[attr-defined]

    async def pending_redemptions(self, sender: bytes) -> int:
        """Face value of the sender's winning tickets not yet redeemed: the chain service's last pending set,
        plus the winners this replica stored after that set was read (another replica's show up one redeemer
        pass later)."""
        info = await self._sender(sender)
        return info.pending + self._stored_since(sender, info.pending_at)

    async def ticket_validity_period(self) -> int:
        return self._get("params", ProtocolParams).ticket_validity_period  # type: ignore[attr-defined]


class NotedWinners:
    """The winning-ticket store (``pm.WinningTickets``), noting each winner it stores in ``KvChainData``."""

    def __init__(self, store: WinningTickets, chain: KvChainData) -> None:
        self._store = store
        self._chain = chain
        self.durable = store.durable

    async def store(self, ticket: SignedTicket) -> bool:
        stored = await self._store.store(ticket)
        if stored:
            self._chain.note_winner(ticket.ticket.sender, ticket.ticket.face_value)
        return stored

    async def pending(self) -> list[SignedTicket]:
        return await self._store.pending()

    async def settle(self, ticket_hash: bytes, result: WinnerSettled) -> WinnerRecord:
        return await self._store.settle(ticket_hash, result)

    async def record(self, ticket_hash: bytes) -> WinnerRecord | None:
        return await self._store.record(ticket_hash)
