"""Hand-written fakes of the payment ports (baton_common.pm.ports), for the domain tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from baton_common.pm import SenderInfo

ORCH_KEY = bytes.fromhex("8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba")
"""The orchestrator's key (a well-known test key; never holds funds)."""

ROUND = 5000
ROUND_BLOCK_HASH = bytes.fromhex("5e" * 32)
L1_BLOCK = 21_000_000


@dataclass
class FakeChain:
    """Chain facts the tests set directly; one instance per test."""

    round: int = ROUND
    block_hashes: dict[int, bytes] = field(default_factory=lambda: {ROUND: ROUND_BLOCK_HASH})
    l1_block: int = L1_BLOCK
    senders: dict[bytes, SenderInfo] = field(default_factory=dict)
    claimed: dict[tuple[bytes, bytes], int] = field(default_factory=dict)
    pool_size: int = 100
    active: set[bytes] = field(default_factory=set)
    gas: int = 1_000_000_000
    pending: dict[bytes, int] = field(default_factory=dict)
    validity_period: int = 2
    errors: dict[str, Exception] = field(default_factory=dict)
    """Method name -> what it raises: the chain service failing to answer."""
    default_sender: SenderInfo = SenderInfo(
        deposit=10**18, reserve_funds_remaining=10**20, reserve_claimed_in_current_round=0
    )

    def _answer(self, method: str) -> None:
        if method in self.errors:
            raise self.errors[method]

    async def last_initialized_round(self) -> int:
        self._answer("last_initialized_round")
        return self.round

    async def round_block_hash(self, round_: int) -> bytes:
        return self.block_hashes.get(round_, bytes(32))

    async def last_seen_l1_block(self) -> int:
        self._answer("last_seen_l1_block")
        return self.l1_block

    async def sender_info(self, sender: bytes) -> SenderInfo:
        self._answer("sender_info")
        return self.senders.get(sender, self.default_sender)

    async def claimed_reserve(self, sender: bytes, claimant: bytes) -> int:
        return self.claimed.get((sender, claimant), 0)

    async def active_pool_size(self) -> int:
        return self.pool_size

    async def is_active_orchestrator(self, address: bytes, round_: int) -> bool:
        self._answer("is_active_orchestrator")
        return address in self.active

    async def gas_price(self) -> int:
        return self.gas

    async def pending_redemptions(self, sender: bytes) -> int:
        return self.pending.get(sender, 0)

    async def ticket_validity_period(self) -> int:
        return self.validity_period
