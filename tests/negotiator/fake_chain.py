"""A fake chain service: writes the baton-chain values (schemas/chain.py) and answers baton.chain.sender.

Written against the contract only, as the real chain service is built in
parallel: every value with a fresh ``read_at``, re-put every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import nats

from baton_common.schemas import decode, encode
from baton_common.schemas.chain import (
    CHAIN,
    SENDER_LOOKUP_SUBJECT,
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
from baton_common.streams import ensure_kv

ROUND = 4000
L1_BLOCK = 21_000_000
GAS_PRICE = 1_000_000_000


class FakeChain:
    def __init__(self, nc: nats.NATS, orchestrator: str, *, deposit: int = 10**19, reserve: int = 10**19) -> None:
        self.nc = nc
        self.orchestrator = orchestrator.lower()
        self.deposit, self.reserve = deposit, reserve
        self.lookups: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._sub = None

    def values(self) -> dict[str, object]:
        now = time.time()
        return {
            "head": L1Head(read_at=now, block=L1_BLOCK, l1_block=L1_BLOCK),
            "round": RoundState(read_at=now, round=ROUND, initialized=True, last_initialized_round=ROUND),
            round_hash_key(ROUND): RoundHash(read_at=now, round=ROUND, block_hash="0x" + "ab" * 32),
            "gas-price": GasPrice(read_at=now, suggested_wei=GAS_PRICE),
            "orchestrator": OrchestratorStatus(read_at=now, address=self.orchestrator, active=True,
                                               activation_round=1, deactivation_round=2**40),
            "params": ProtocolParams(read_at=now, ticket_validity_period=2, active_pool_size=10),
        }

    def sender(self, address: str) -> SenderInfo:
        return SenderInfo(read_at=time.time(), sender=address.lower(), deposit=self.deposit, reserve=self.reserve,
                          round=ROUND)

    async def start(self) -> FakeChain:
        self.kv = await ensure_kv(self.nc.jetstream(), CHAIN)
        await self._put()
        self._task = asyncio.create_task(self._refresh())
        self._sub = await self.nc.subscribe(SENDER_LOOKUP_SUBJECT, cb=self._lookup)
        return self

    async def _put(self) -> None:
        for key, value in self.values().items():
            await self.kv.put(key, encode(value))  # type: ignore[arg-type]

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(5)
            await self._put()

    async def _lookup(self, msg: nats.aio.msg.Msg) -> None:
        request = decode(msg.data, SenderLookup)
        self.lookups.append(request.sender)
        info = self.sender(request.sender)
        await self.kv.put(sender_key(request.sender), encode(info))
        await msg.respond(encode(info))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._sub:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
