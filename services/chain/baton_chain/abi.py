"""The Livepeer protocol functions and events the chain service uses, as ABI signatures.

Only the signatures (what the contracts' ABIs publish), written out here so the
service needs no npm package at run time; the tests check each against the
ABI of Livepeer's deployed contracts (``@livepeer/sdk`` 1.0.1-alpha.10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

__all__ = ["EVENTS", "FUNCTIONS", "SENDER_FUNDS_EVENTS", "Event", "Fn", "TICKET"]

TICKET = "(address,address,uint256,uint256,uint256,bytes32,bytes)"


@dataclass(frozen=True)
class Fn:
    contract: str
    name: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        return keccak(text=self.signature)[:4]

    def data(self, *args: Any) -> bytes:
        return self.selector + encode(list(self.inputs), list(args))

    def result(self, raw: bytes) -> Any:
        values = decode(list(self.outputs), raw)
        return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class Event:
    contract: str
    name: str
    inputs: tuple[str, ...]

    @property
    def topic(self) -> bytes:
        return keccak(text=f"{self.name}({','.join(self.inputs)})")


_F = [
    Fn("Controller", "getContract", ("bytes32",), ("address",)),
    Fn("Controller", "paused", (), ("bool",)),
    Fn("RoundsManager", "currentRound", (), ("uint256",)),
    Fn("RoundsManager", "currentRoundInitialized", (), ("bool",)),
    Fn("RoundsManager", "lastInitializedRound", (), ("uint256",)),
    Fn("RoundsManager", "currentRoundStartBlock", (), ("uint256",)),
    Fn("RoundsManager", "roundLength", (), ("uint256",)),
    Fn("RoundsManager", "blockHashForRound", ("uint256",), ("bytes32",)),
    Fn("RoundsManager", "initializeRound"),
    Fn("BondingManager", "getTranscoder", ("address",), ("uint256",) * 10),
    Fn("BondingManager", "isActiveTranscoder", ("address",), ("bool",)),
    Fn("BondingManager", "isRegisteredTranscoder", ("address",), ("bool",)),
    Fn("BondingManager", "getTranscoderPoolSize", (), ("uint256",)),
    Fn("BondingManager", "getTranscoderPoolMaxSize", (), ("uint256",)),
    Fn("BondingManager", "getFirstTranscoderInPool", (), ("address",)),
    Fn("BondingManager", "getNextTranscoderInPool", ("address",), ("address",)),
    Fn("BondingManager", "transcoderTotalStake", ("address",), ("uint256",)),
    Fn("BondingManager", "getTotalBonded", (), ("uint256",)),
    Fn("BondingManager", "getTranscoderEarningsPoolForRound", ("address", "uint256"), ("uint256",) * 5),
    Fn("BondingManager", "rewardWithHint", ("address", "address")),
    Fn("Minter", "currentMintableTokens", (), ("uint256",)),
    Fn("TicketBroker", "getSenderInfo", ("address",), ("(uint256,uint256)", "(uint256,uint256)")),
    Fn("TicketBroker", "claimedReserve", ("address", "address"), ("uint256",)),
    Fn("TicketBroker", "usedTickets", ("bytes32",), ("bool",)),
    Fn("TicketBroker", "ticketValidityPeriod", (), ("uint256",)),
    Fn("TicketBroker", "redeemWinningTicket", (TICKET, "bytes", "uint256")),
    Fn("ServiceRegistry", "getServiceURI", ("address",), ("string",)),
    Fn("PriceFeed", "latestRoundData", (), ("uint80", "int256", "uint256", "uint256", "uint80")),
    Fn("PriceFeed", "decimals", (), ("uint8",)),
    Fn("PriceFeed", "description", (), ("string",)),
]
FUNCTIONS: dict[str, Fn] = {f"{f.contract}.{f.name}": f for f in _F}

_E = [
    Event("TicketBroker", "WinningTicketRedeemed",
          ("address", "address", "uint256", "uint256", "uint256", "uint256", "bytes")),
    Event("BondingManager", "Reward", ("address", "uint256")),
    Event("TicketBroker", "DepositFunded", ("address", "uint256")),
    Event("TicketBroker", "ReserveFunded", ("address", "uint256")),
    Event("TicketBroker", "ReserveClaimed", ("address", "address", "uint256")),
    Event("TicketBroker", "Withdrawal", ("address", "uint256", "uint256")),
    Event("TicketBroker", "Unlock", ("address", "uint256", "uint256")),
    Event("TicketBroker", "UnlockCancelled", ("address",)),
    Event("TicketBroker", "WinningTicketTransfer", ("address", "address", "uint256")),
]
SENDER_FUNDS_EVENTS = tuple(k for k in (
    "TicketBroker.DepositFunded", "TicketBroker.ReserveFunded", "TicketBroker.ReserveClaimed",
    "TicketBroker.Withdrawal", "TicketBroker.Unlock", "TicketBroker.UnlockCancelled",
    "TicketBroker.WinningTicketTransfer", "TicketBroker.WinningTicketRedeemed"))
"""TicketBroker events that move a sender's funds; each names the sender in its first indexed topic."""
EVENTS: dict[str, Event] = {f"{e.contract}.{e.name}": e for e in _E}
