"""Hand-written fakes of what the reward and redemption loops need from Ethereum (domain tests, no anvil)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from eth_abi import encode as abi_encode

from baton_chain.abi import EVENTS
from baton_common.pm import SignedTicket
from baton_common.pm.ticket import Ticket

ME = bytes.fromhex("11" * 20)
SENDER = bytes.fromhex("22" * 20)


def ticket(nonce: int, *, face: int = 10**16, creation_round: int = 5, expiration_block: int = 10) -> SignedTicket:
    t = Ticket(recipient=ME, sender=SENDER, face_value=face, win_prob=2**256 - 1, sender_nonce=nonce,
               recipient_rand_hash=bytes(32), creation_round=creation_round,
               creation_round_block_hash=b"\x07" * 32)
    return SignedTicket(ticket=t, sig=b"\x01" * 65, recipient_rand=nonce, expiration_block=expiration_block)


class Lease:
    def held(self) -> bool:
        return True


class Winners:
    def __init__(self, tickets: list[SignedTicket]) -> None:
        self.tickets = list(tickets)
        self.settled: dict[bytes, Any] = {}

    async def pending(self) -> list[SignedTicket]:
        return [t for t in self.tickets if t.ticket_hash not in self.settled]

    async def settle(self, h: bytes, result: Any) -> Any:
        self.settled[h] = result
        return result


class FakeEth:
    """Answers the redeemer's reads; ``used`` holds the hashes TicketBroker reports used; ``fail`` maps a
    function (or ``logs``) to the exception it raises."""

    def __init__(self, used: set[bytes] = frozenset(), *, deposit: int = 10**18, reserve: int = 10**18,
                 current_round: int = 5, head: int = 1_000_000, l1_per_l2: float = 1.0) -> None:
        self.used = set(used)
        self.fail: dict[str, BaseException] = {}
        self.deposit, self.reserve = deposit, reserve
        self.current_round = current_round
        self.head = head
        self.l1_per_l2 = l1_per_l2
        self.logs_calls: list[tuple[int, int | str]] = []
        self.events: list[tuple[int, SignedTicket, bytes]] = []  # WinningTicketRedeemed: (block, ticket, tx)
        self.addresses = {"TicketBroker": "0x" + "33" * 20}

    async def call(self, fn: str, *args: Any, **kw: Any) -> Any:
        if fn in self.fail:
            raise self.fail[fn]
        return {
            "TicketBroker.usedTickets": lambda: args[0] in self.used,
            "RoundsManager.currentRound": lambda: self.current_round,
            "RoundsManager.lastInitializedRound": lambda: self.current_round,
            "RoundsManager.roundLength": lambda: 5760,
            "RoundsManager.currentRoundStartBlock": lambda: self.current_round * 5760,
            "RoundsManager.blockHashForRound": lambda: b"\x07" * 32,
            "TicketBroker.ticketValidityPeriod": lambda: 2,
            "TicketBroker.getSenderInfo": lambda: ((self.deposit, 0), (self.reserve, 0)),
            "TicketBroker.claimedReserve": lambda: 0,
            "BondingManager.getTranscoderPoolSize": lambda: 1,
            "BondingManager.isActiveTranscoder": lambda: True,
        }[fn]()

    def _l1(self, number: int) -> int:
        return int(number * self.l1_per_l2)

    async def block(self) -> Any:
        return SimpleNamespace(number=self.head, l1_number=self._l1(self.head), hash=b"\0" * 32, base_fee=None)

    async def block_at(self, number: int) -> Any:
        return SimpleNamespace(number=number, l1_number=self._l1(number), hash=b"\0" * 32, base_fee=None)

    async def gas_price(self) -> int:
        return 10**7

    async def logs(self, event: str, from_block: int, to_block: int | str, *topics: Any) -> list[Any]:
        self.logs_calls.append((from_block, to_block))
        if "logs" in self.fail:
            raise self.fail["logs"]
        types = list(EVENTS[event].inputs[2:])
        high = self.head if to_block == "latest" else int(to_block)
        return [{"data": abi_encode(types, [t.ticket.face_value, t.ticket.win_prob, t.ticket.sender_nonce,
                                            t.recipient_rand, t.ticket.aux_data()]), "transactionHash": tx}
                for block, t, tx in self.events if from_block <= block <= high]

    async def tx_sender(self, tx: bytes) -> str:
        return "0x" + ME.hex()


class FakeSender:
    def __init__(self) -> None:
        self.lease = Lease()
        self.address = "0x" + ME.hex()
        self.sent: list[bytes] = []
        self.tx_timeout = 300.0

    async def send(self, to: str, data: bytes, *, what: str, **kw: Any) -> dict[str, Any]:
        self.sent.append(data)
        return {"transactionHash": b"\xaa" * 32, "status": 1, "logs": []}

    async def receipt(self, h: bytes) -> Any:
        return None

    async def wait_in_flight(self, timeout: float) -> bool:
        return True
