"""Chain data: what the chain service reads from Ethereum, for everyone else, in KV.

The chain service is the only writer of ``baton-chain``; the negotiator,
pricing and the monitor read it (a watch keeps a local copy). Every value
says when it was read (``read_at``, Unix time, and ``block``, the L1 block then
seen). The chain service re-reads and re-puts each value every
``CHAIN_REFRESH`` seconds, changed or not, so a reader can refuse to quote
from a stale view (``CHAIN_MAX_AGE``).
Wei amounts are ints in JSON.

A sender the chain service has not seen yet: the negotiator sends a
:class:`SenderLookup` on ``SENDER_LOOKUP_SUBJECT`` (the cold path, once per new
sender); the chain service reads it, answers with the :class:`SenderInfo`, puts
it under ``sender.<address>`` and from then on keeps that key fresh (each new
round, and on the TicketBroker events that move the sender's funds).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .base import Message
from .storage import KvSpec, SubjectSpec

__all__ = [
    "CHAIN",
    "CHAIN_BUCKET",
    "CHAIN_LEASE",
    "CHAIN_LEASE_BUCKET",
    "CHAIN_LEASE_TTL",
    "CHAIN_TXS",
    "CHAIN_TXS_BUCKET",
    "CHAIN_TXS_TTL",
    "SentTx",
    "ChainLease",
    "CHAIN_MAX_AGE",
    "CHAIN_REFRESH",
    "ETH_USD_MAX_AGE",
    "EthUsdRate",
    "GasPrice",
    "L1Head",
    "OrchestratorStatus",
    "ProtocolParams",
    "RoundHash",
    "RoundState",
    "SENDER_LOOKUP",
    "SENDER_LOOKUP_SUBJECT",
    "SenderInfo",
    "SenderLookup",
    "ChainValue",
    "round_hash_key",
    "sender_key",
    "ETH_USD_KEY",
    "GAS_PRICE_KEY",
    "HEAD_KEY",
    "ORCHESTRATOR_KEY",
    "PARAMS_KEY",
    "ROUND_KEY",
    "SENDER_KEY_PREFIX",
    "sender_of_key",
]

CHAIN_BUCKET = "baton-chain"
CHAIN_REFRESH = 30.0
"""Seconds between two reads of each value (a change is put at once); eth-usd is read hourly, as go-livepeer."""
CHAIN_MAX_AGE = 60.0
"""Readers treat a value read longer ago than this as missing: two refreshes missed."""
ETH_USD_MAX_AGE = 7200.0
"""The same for ``eth-usd``, which is read hourly."""
SENDER_LOOKUP_SUBJECT = "baton.chain.sender"
CHAIN_LEASE_BUCKET = "baton-chain-lease"
CHAIN_LEASE_TTL = 15.0
"""Seconds the sender lease outlives its holder's last renewal (the bucket's TTL)."""
CHAIN_TXS_BUCKET = "baton-chain-txs"
CHAIN_TXS_TTL = 7 * 86400.0
"""A backstop: an entry is deleted once its ticket is settled, which is within the ticket's validity window."""

Wei = Annotated[int, msgspec.Meta(ge=0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class _Read(Message, frozen=True, kw_only=True, tag=False):
    """Base of every chain value (untagged itself): when it was read."""

    read_at: Annotated[float, msgspec.Meta(description="Unix time the value was read from the node.")]
    block: NonNegative = 0
    """The last L1 block seen when it was read."""


class L1Head(_Read, frozen=True, kw_only=True, tag="chain-head.v1"):
    """Key ``head``: the last seen L1 block (on Arbitrum, the L1 number the node reports)."""

    l1_block: NonNegative


class RoundState(_Read, frozen=True, kw_only=True, tag="chain-round.v1"):
    """Key ``round``: the current round and whether it is initialized."""

    round: NonNegative
    initialized: bool
    last_initialized_round: NonNegative
    round_length: NonNegative = 0
    """L1 blocks per round."""
    start_block: NonNegative = 0


class RoundHash(_Read, frozen=True, kw_only=True, tag="chain-round-hash.v1"):
    """Key ``round-hash.<round>``: a round's L1 block hash, written once it is initialized."""

    round: NonNegative
    block_hash: str
    """0x-prefixed hex, 32 bytes; all zeros when the round was never initialized."""


class GasPrice(_Read, frozen=True, kw_only=True, tag="chain-gas.v1"):
    """Key ``gas-price``: the node's raw suggested gas price; -minGasPrice is applied by whoever uses it."""

    suggested_wei: Wei


class OrchestratorStatus(_Read, frozen=True, kw_only=True, tag="chain-orchestrator.v1"):
    """Key ``orchestrator``: whether this orchestrator is active in the current round."""

    address: str
    active: bool
    activation_round: NonNegative = 0
    deactivation_round: NonNegative = 0
    service_uri: str = ""


class ProtocolParams(_Read, frozen=True, kw_only=True, tag="chain-params.v1"):
    """Key ``params``: protocol values that change rarely."""

    ticket_validity_period: NonNegative
    """Rounds a ticket stays redeemable (2 on mainnet)."""
    active_pool_size: NonNegative
    """Active orchestrators this round: the divisor of a sender's reserve."""


class SenderInfo(_Read, frozen=True, kw_only=True, tag="chain-sender.v1"):
    """Key ``sender.<address>``: one gateway's TicketBroker funds, as of ``round``."""

    sender: str
    """0x-prefixed lowercase hex."""
    deposit: Wei
    reserve: Wei
    """Reserve funds remaining."""
    withdraw_round: NonNegative = 0
    """0 = not unlocking."""
    reserve_claimed: Wei = 0
    """Reserve claimed by all orchestrators in the current round."""
    claimed_by_us: Wei = 0
    """Reserve this orchestrator claimed in the current round."""
    round: NonNegative = 0
    pending: Wei = 0
    """Face value of this sender's winning tickets to us not yet redeemed (the redeemer's pending set): the
    payments core takes it off the reserve allocation when it sets max float, as go-livepeer's sender monitor."""
    pending_at: float = 0.0
    """Unix time just before the redeemer read the pending set ``pending`` counts: a winner stored after it is
    not in ``pending`` yet, and the negotiator that stored it adds its face value until a value read later
    arrives (0: no pending set read yet)."""


class EthUsdRate(_Read, frozen=True, kw_only=True, tag="chain-eth-usd.v1"):
    """Key ``eth-usd``: the price feed's answer; rate = answer / 10**decimals."""

    feed: str
    """The Chainlink aggregator's address (-priceFeedAddr)."""
    answer: int
    decimals: NonNegative
    updated_at: Annotated[float, msgspec.Meta(description="The feed's own update time (Unix), not our read time.")]
    eth_is_base: bool = True
    """True for an ETH/USD feed, False for USD/ETH."""


class SenderLookup(Message, frozen=True, kw_only=True, tag="chain-sender-lookup.v1"):
    sender: str


class ChainLease(Message, frozen=True, kw_only=True, tag="chain-lease.v1"):
    """Key ``sender`` of ``baton-chain-lease``: the one chain instance that sends transactions.

    Created when absent (``create``), renewed by compare-and-set every third of
    ``CHAIN_LEASE_TTL``; the bucket's TTL drops it when its holder stops renewing,
    and a standby instance's ``create`` then succeeds.
    """

    holder: str
    """The holder's instance id (Baton writes ``<instance id>@<host>#<process id>``: one per process)."""
    account: str
    """The orchestrator's address it sends from."""
    renewed_at: float


class SentTx(Message, frozen=True, kw_only=True, tag="chain-tx.v1"):
    """Key ``redeem.<ticket hash>`` of ``baton-chain-txs``: the redemption transactions the chain service signed
    for one winning ticket, each journaled before it is sent (a replacement adds its hash).

    After a crash between send and receipt, the redeemer asks the node for these
    transactions' receipts before it looks for the ticket's redemption event.
    """

    what: str
    account: str
    """The orchestrator's address that signed them."""
    nonce: NonNegative
    """The nonce of the last one signed."""
    tx_hashes: list[str]
    """0x-prefixed hex, oldest first."""
    sent_at: float


ChainValue = L1Head | RoundState | RoundHash | GasPrice | OrchestratorStatus | ProtocolParams | SenderInfo | EthUsdRate
"""Every value in ``baton-chain``: decode any key with this union."""


HEAD_KEY = "head"
ROUND_KEY = "round"
GAS_PRICE_KEY = "gas-price"
ORCHESTRATOR_KEY = "orchestrator"
PARAMS_KEY = "params"
ETH_USD_KEY = "eth-usd"
SENDER_KEY_PREFIX = "sender."


def sender_key(sender: str) -> str:
    return f"{SENDER_KEY_PREFIX}{sender.lower()}"


def sender_of_key(key: str) -> str | None:
    """The sender address a ``sender.<address>`` key names, or None for any other key."""
    return key.removeprefix(SENDER_KEY_PREFIX) if key.startswith(SENDER_KEY_PREFIX) else None


def round_hash_key(round_: int) -> str:
    return f"round-hash.{round_}"


CHAIN = KvSpec(
    bucket=CHAIN_BUCKET,
    key="head | round | round-hash.<n> | gas-price | orchestrator | params | eth-usd | sender.<address>",
    ttl=None,
    history=1,
    writer="chain",
    readers=("negotiator", "pricing", "monitor"),
    schema="chain.ChainValue",
    purpose=f"the chain view, each value with read_at; readers treat values older than {CHAIN_MAX_AGE:g} s as missing",
)

CHAIN_TXS = KvSpec(
    bucket=CHAIN_TXS_BUCKET,
    key="redeem.<ticket hash>",
    ttl=CHAIN_TXS_TTL,
    history=1,
    writer="chain",
    readers=("chain",),
    schema="chain.SentTx",
    purpose="journal of the redemption transactions sent, written before each send, deleted once the ticket settles",
)

SENDER_LOOKUP = SubjectSpec(
    subject=SENDER_LOOKUP_SUBJECT,
    writer="negotiator",
    readers=("chain",),
    schema="chain.SenderLookup",
    reply="chain.SenderInfo",
    purpose="cold path for a sender not yet in baton-chain; chain then keeps sender.<address> fresh",
)

CHAIN_LEASE = KvSpec(
    bucket=CHAIN_LEASE_BUCKET,
    key="sender",
    ttl=CHAIN_LEASE_TTL,
    history=1,
    writer="chain",
    readers=("chain", "monitor"),
    schema="chain.ChainLease",
    purpose="which chain instance sends transactions (reward, redemption); lapses when its holder stops renewing",
)
