"""The payments core's ChainData port, answered from the node (for the redeemer's RedemptionGate).

Reads are memoized for one pass of the redeemer (:meth:`LiveChainData.fresh`),
so a pass over many tickets asks the node each question once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eth_utils import to_checksum_address

from baton_common.pm import SenderInfo

from .eth import Eth

__all__ = ["LiveChainData"]


def _addr(raw: bytes) -> str:
    return to_checksum_address(raw)


class LiveChainData:
    def __init__(self, eth: Eth, pending: Callable[[bytes], int]) -> None:
        self.eth = eth
        self._pending = pending
        self._memo: dict[tuple, Any] = {}

    def fresh(self) -> None:
        self._memo.clear()

    def forget_sender(self, sender: bytes) -> None:
        """Drop what this pass read of ``sender``'s funds (a redemption just moved them)."""
        for key in [k for k in self._memo if k[0] in ("si", "cl") and k[1] == sender]:
            del self._memo[key]

    async def _once(self, key: tuple, read: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self._memo:
            self._memo[key] = await read()
        return self._memo[key]

    async def last_initialized_round(self) -> int:
        return await self._once(("lir",), lambda: self.eth.call("RoundsManager.lastInitializedRound"))

    async def current_round(self) -> int:
        return await self._once(("cr",), lambda: self.eth.call("RoundsManager.currentRound"))

    async def round_block_hash(self, round_: int) -> bytes:
        return await self._once(("rbh", round_), lambda: self.eth.call("RoundsManager.blockHashForRound", round_))

    async def last_seen_l1_block(self) -> int:
        return (await self._once(("block",), self.eth.block)).l1_number

    async def sender_info(self, sender: bytes) -> SenderInfo:
        raw = await self._once(("si", sender), lambda: self.eth.call("TicketBroker.getSenderInfo", _addr(sender)))
        (deposit, withdraw_round), (remaining, claimed) = raw
        return SenderInfo(deposit=deposit, withdraw_round=withdraw_round, reserve_funds_remaining=remaining,
                          reserve_claimed_in_current_round=claimed)

    async def claimed_reserve(self, sender: bytes, claimant: bytes) -> int:
        return await self._once(("cl", sender, claimant), lambda: self.eth.call(
            "TicketBroker.claimedReserve", _addr(sender), _addr(claimant)))

    async def active_pool_size(self) -> int:
        return await self._once(("pool",), lambda: self.eth.call("BondingManager.getTranscoderPoolSize"))

    async def is_active_orchestrator(self, address: bytes, round_: int) -> bool:
        return await self._once(("active", address), lambda: self.eth.call(
            "BondingManager.isActiveTranscoder", _addr(address)))

    async def gas_price(self) -> int:
        return await self._once(("gas",), self.eth.gas_price)

    async def pending_redemptions(self, sender: bytes) -> int:
        return self._pending(sender)

    async def ticket_validity_period(self) -> int:
        return await self._once(("tvp",), lambda: self.eth.call("TicketBroker.ticketValidityPeriod"))
