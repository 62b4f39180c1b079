"""The payments core's ChainData read from the ``baton-chain`` bucket, as the negotiator reads it.

The tests produce winning tickets the way the negotiator will: the payments
core (PaymentProcessor over the shared KV stores) validating a gateway's
payment against the chain data the chain service published. A sender not in
the bucket yet goes through the cold path, ``baton.chain.sender``.
"""

from __future__ import annotations

import nats
from nats.js.errors import KeyNotFoundError

from baton_common.pm import SenderInfo
from baton_common.schemas import decode, encode
from baton_common.schemas.chain import (
    CHAIN_BUCKET,
    SENDER_LOOKUP_SUBJECT,
    ChainValue,
    GasPrice,
    L1Head,
    OrchestratorStatus,
    ProtocolParams,
    RoundHash,
    RoundState,
    SenderLookup,
    round_hash_key,
    sender_key,
)
from baton_common.schemas.chain import SenderInfo as ChainSenderInfo


class KvChainView:
    def __init__(self, nc: nats.NATS, orchestrator: bytes) -> None:
        self.nc = nc
        self.orchestrator = orchestrator
        self.kv = None

    async def _get(self, key: str) -> ChainValue | None:
        if self.kv is None:
            self.kv = await self.nc.jetstream().key_value(CHAIN_BUCKET)
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        return decode(entry.value, ChainValue)

    async def _need(self, key: str, kind: type) -> ChainValue:
        value = await self._get(key)
        assert isinstance(value, kind), f"{key} is not published: {value!r}"
        return value

    async def last_initialized_round(self) -> int:
        return (await self._need("round", RoundState)).last_initialized_round

    async def round_block_hash(self, round_: int) -> bytes:
        value = await self._get(round_hash_key(round_))
        return bytes.fromhex(value.block_hash[2:]) if isinstance(value, RoundHash) else bytes(32)

    async def last_seen_l1_block(self) -> int:
        return (await self._need("head", L1Head)).l1_block

    async def _sender(self, sender: bytes) -> ChainSenderInfo:
        address = "0x" + sender.hex()
        value = await self._get(sender_key(address))
        if not isinstance(value, ChainSenderInfo):
            reply = await self.nc.request(SENDER_LOOKUP_SUBJECT, encode(SenderLookup(sender=address)), timeout=10)
            value = decode(reply.data, ChainSenderInfo)
        return value

    async def sender_info(self, sender: bytes) -> SenderInfo:
        v = await self._sender(sender)
        return SenderInfo(deposit=v.deposit, withdraw_round=v.withdraw_round, reserve_funds_remaining=v.reserve,
                          reserve_claimed_in_current_round=v.reserve_claimed)

    async def claimed_reserve(self, sender: bytes, claimant: bytes) -> int:
        return (await self._sender(sender)).claimed_by_us

    async def active_pool_size(self) -> int:
        return (await self._need("params", ProtocolParams)).active_pool_size

    async def is_active_orchestrator(self, address: bytes, round_: int) -> bool:
        status = await self._need("orchestrator", OrchestratorStatus)
        return status.address == "0x" + address.hex() and status.active

    async def gas_price(self) -> int:
        return (await self._need("gas-price", GasPrice)).suggested_wei

    async def pending_redemptions(self, sender: bytes) -> int:
        return 0

    async def ticket_validity_period(self) -> int:
        return (await self._need("params", ProtocolParams)).ticket_validity_period
