"""Redeem the winning tickets in the winners bucket, oldest first, each exactly once.

A pass runs on each new block while this instance holds the sender lease. Per
pending ticket, in this order (spec 3.7):

1. already used on chain: if a transaction of ours journaled for it (in
   ``baton-chain-txs``, written before each send) has a successful receipt,
   or else our own WinningTicketRedeemed event for it is there (a crash
   between send and receipt), it is settled redeemed with that transaction;
   otherwise refused ``ticket_used``;
2. out of the contract's window (creationRound + validityPeriod <= currentRound):
   refused ``ticket_expired``, or ``sender_underfunded`` when the sender's funds
   were what held it back;
3. ``RedemptionGate.check`` defers it until its params have expired and the
   sender's funds and its face value cover the redemption's cost, and while
   the sender's funds fall short of its face value but it stays redeemable
   past the next round (in its last round it is redeemed for what is there;
   ``livepeer_value_redeemed`` counts the amount transferred);
4. the creation round's block hash must be on chain and match;
5. ``redeemWinningTicket``, waiting for the receipt. A revert TicketBroker
   gives for good (``domain.NON_RETRYABLE``) settles it refused with the
   reason; any other failure, a reverted transaction included, leaves it
   pending, counted in ``livepeer_ticket_redemption_errors`` and logged with
   its reason, and it is tried again on a later block until step 2 ends it
   with the last error recorded. Nothing leaves the pending set unrecorded.
   A revert for the sender's funds (deposit and reserve drained, or unlocked)
   is also tried again while the ticket is valid, since the sender may fund
   again; at the window's end it is refused ``sender_underfunded``.

A redemption moves its sender's funds, so the pass reads them again for the
next ticket of the same sender.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address

from baton_common.pm import (
    MemoryNonceStore,
    ParamsPolicy,
    RedemptionDeferred,
    RedemptionGate,
    SignedTicket,
    TicketParamsIssuer,
    redeem_args,
)
from baton_common.pm.winners import WinnerRedeemed, WinnerRefused, WinnerSettled
from baton_common.pm_nats import KvWinningTickets

from .abi import EVENTS, FUNCTIONS
from .domain import RefusalCode, classify_revert
from .errors import ChainError, NotLeaseHolder, Superseded, TxReverted
from .eth import Eth
from .journal import TxJournal, redeem_key
from .metrics import (
    BAD_WINNER_RECORDS,
    PENDING_FACE_VALUE,
    PENDING_REDEMPTIONS,
    REDEMPTION_ERRORS,
    TICKETS_SETTLED,
    VALUE_REDEEMED,
    WINNING_TICKETS_RECV,
)
from .tx import TxSender
from .view import LiveChainData

__all__ = ["Redeemer", "run_redeemer"]

log = logging.getLogger("baton.chain.redeemer")
LOG_CHUNK = 10_000
"""Blocks per eth_getLogs call (the range most RPC providers accept)."""


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


class Redeemer:
    def __init__(self, eth: Eth, sender: TxSender, winners: KvWinningTickets, recipient: bytes,
                 *, redeem_gas: int, on_sender: Callable[[str], None] = lambda address: None,
                 on_pending: Callable[[dict[str, int], float], Awaitable[None]] | None = None,
                 journal: TxJournal | None = None) -> None:
        self.eth = eth
        self.journal = journal
        self.sender = sender
        self.winners = winners
        self.recipient = recipient
        self.in_flight: dict[bytes, int] = defaultdict(int)
        self.view = LiveChainData(eth, lambda s: self.in_flight.get(s, 0))
        # The gate only needs the issuer's reserve_alloc, which reads chain data (no secret, no nonces).
        issuer = TicketParamsIssuer(ParamsPolicy(recipient=recipient, redeem_gas=redeem_gas), b"\0" * 32,
                                    self.view, MemoryNonceStore())
        self.gate = RedemptionGate(issuer, self.view, redeem_gas, wait_for_face_value=True)
        self.deferred: dict[bytes, str] = {}
        self.last_error: dict[bytes, str] = {}
        self._seen: set[bytes] = set()
        self._round_starts: dict[int, int] = {}
        self._on_sender = on_sender
        self._on_pending = on_pending

    async def pass_once(self) -> None:
        self.view.fresh()
        read_at = time.time()  # before the read: a winner stored after it may be missing from this pending set
        pending = await self.winners.pending()
        PENDING_REDEMPTIONS.set(len(pending))
        BAD_WINNER_RECORDS.set(len(getattr(self.winners, "bad_records", {})))
        PENDING_FACE_VALUE.set(sum(t.ticket.face_value for t in pending))
        for t in pending:
            if t.ticket_hash not in self._seen:
                self._seen.add(t.ticket_hash)
                WINNING_TICKETS_RECV.labels(sender=_hex(t.ticket.sender)).inc()
                self._on_sender(_hex(t.ticket.sender))  # its funds are published from now on
        if self._on_pending is not None:
            by_sender: dict[str, int] = defaultdict(int)
            for t in pending:
                by_sender[_hex(t.ticket.sender)] += t.ticket.face_value
            try:
                await self._on_pending(dict(by_sender), read_at)
            except Exception as exc:  # published on a later pass
                log.warning("pending face values not published", extra={"error": type(exc).__name__})
        if not pending or not self.sender.lease.held():
            return
        current = await self.view.current_round()
        validity = await self.view.ticket_validity_period()
        for ticket in pending:
            try:
                await self._one(ticket, current, validity)
            except NotLeaseHolder:
                return
            except Exception as exc:  # one ticket's failure never holds back the next: it is tried on a later pass
                error = exc.code if isinstance(exc, ChainError) else type(exc).__name__
                REDEMPTION_ERRORS.labels(sender=_hex(ticket.ticket.sender)).inc()
                self.last_error.setdefault(ticket.ticket_hash, f"{error}: {str(exc)[:200]}")
                log.warning("winning ticket not handled this pass; the pass goes on",
                            extra={"ticket": _hex(ticket.ticket_hash), "error": f"{error}: {str(exc)[:300]}"},
                            exc_info=not isinstance(exc, ChainError))

    async def _settle(self, ticket: SignedTicket, result: WinnerSettled) -> None:
        await self.winners.settle(ticket.ticket_hash, result)
        kind = "redeemed" if isinstance(result, WinnerRedeemed) else result.code
        TICKETS_SETTLED.labels(result=kind).inc()
        self.deferred.pop(ticket.ticket_hash, None)
        self.last_error.pop(ticket.ticket_hash, None)
        extra = {"ticket": _hex(ticket.ticket_hash), "sender": _hex(ticket.ticket.sender), "result": kind}
        if isinstance(result, WinnerRedeemed):
            log.info("winning ticket redeemed", extra={**extra, "tx": _hex(result.tx_hash)})
        else:
            log.warning("winning ticket refused", extra={**extra, "reason": result.reason})
        if self.journal is not None:
            try:
                await self.journal.forget(redeem_key(ticket.ticket_hash))
            except Exception as exc:  # settled all the same; the bucket's TTL drops the entry
                log.warning("journal entry not deleted", extra={"ticket": _hex(ticket.ticket_hash),
                                                                "error": type(exc).__name__})

    async def _refuse(self, ticket: SignedTicket, code: str, reason: str) -> None:
        await self._settle(ticket, WinnerRefused(ticket=ticket, code=code, reason=reason, at=time.time()))

    async def _one(self, ticket: SignedTicket, current: int, validity: int) -> None:
        t = ticket.ticket
        h = ticket.ticket_hash
        if t.recipient != self.recipient:
            await self._refuse(ticket, RefusalCode.INVALID, f"ticket recipient {_hex(t.recipient)} is not us")
            return
        if await self.eth.call("TicketBroker.usedTickets", h):
            await self._settle_used(ticket)
            return
        if not RedemptionGate.in_window(ticket, current, validity):
            why = f"creationRound {t.creation_round} + ticketValidityPeriod {validity} <= current round {current}"
            last_error = self.last_error.get(h, "")
            held_back = await self._held_back(ticket) or last_error
            underfunded = "sender funds" in held_back or classify_revert(last_error) == RefusalCode.UNDERFUNDED
            code = RefusalCode.UNDERFUNDED if underfunded else RefusalCode.EXPIRED
            await self._refuse(ticket, code, f"{why}; held back by: {held_back}" if held_back else why)
            return
        try:
            await self.gate.check(ticket)
        except RedemptionDeferred as exc:
            self.deferred[h] = str(exc)
            return
        block_hash = await self.view.round_block_hash(t.creation_round)
        if block_hash == bytes(32):
            await self._refuse(ticket, RefusalCode.NO_BLOCK_HASH,
                               f"ticket creationRound {t.creation_round} does not have a block hash")
            return
        if block_hash != t.creation_round_block_hash:
            await self._refuse(ticket, RefusalCode.INVALID,
                               f"ticket creationRound {t.creation_round} block hash does not match the chain's")
            return
        await self._redeem(ticket)

    async def _held_back(self, ticket: SignedTicket) -> str:
        """What the gate says now (read again, so a restart does not change the verdict), or ''."""
        try:
            await self.gate.check(ticket)
        except RedemptionDeferred as exc:
            return str(exc)
        return self.deferred.get(ticket.ticket_hash, "")

    async def _redeem(self, ticket: SignedTicket) -> None:
        t = ticket.ticket
        if self.journal is not None:
            for tx_hash in await self.journal.hashes(redeem_key(ticket.ticket_hash)):
                if await self.sender.in_pool(tx_hash):  # ours from before a restart: it lands, or is dropped
                    self.deferred[ticket.ticket_hash] = "our redemption transaction is still in the node's pool"
                    log.info("redemption already in the node's pool; waiting for it",
                             extra={"ticket": _hex(ticket.ticket_hash), "tx": _hex(tx_hash)})
                    return
        data = FUNCTIONS["TicketBroker.redeemWinningTicket"].data(*redeem_args(ticket))
        self.in_flight[t.sender] += t.face_value
        journal = None if self.journal is None else functools.partial(
            self.journal.record, redeem_key(ticket.ticket_hash), "redeemWinningTicket")

        async def still_needed() -> bool:
            return not await self.eth.call("TicketBroker.usedTickets", ticket.ticket_hash)

        try:
            receipt = await self.sender.send(self.eth.addresses["TicketBroker"], data, what="redeemWinningTicket",
                                             journal=journal, still_needed=still_needed)
        except Superseded:
            log.info("ticket used meanwhile by a transaction of ours from before the start; settled on the next "
                     "pass", extra={"ticket": _hex(ticket.ticket_hash)})
            return
        except TxReverted as exc:
            REDEMPTION_ERRORS.labels(sender=_hex(t.sender)).inc()
            code = classify_revert(exc.reason)
            if code == RefusalCode.USED:
                await self._settle_used(ticket)
            elif code == RefusalCode.UNDERFUNDED:
                self.last_error[ticket.ticket_hash] = exc.reason
                log.warning("redemption refused for the sender's funds; tried again while the ticket is valid",
                            extra={"ticket": _hex(ticket.ticket_hash), "reason": exc.reason[:300]})
            elif code:
                await self._refuse(ticket, code, exc.reason)
            else:
                self.last_error[ticket.ticket_hash] = exc.reason
                log.error("redemption reverted; it stays pending and is retried on a later block",
                          extra={"ticket": _hex(ticket.ticket_hash), "reason": exc.reason[:300],
                                 "tx": _hex(exc.tx_hash) if exc.tx_hash else ""})
            return
        except NotLeaseHolder:
            raise
        except ChainError as exc:
            REDEMPTION_ERRORS.labels(sender=_hex(t.sender)).inc()
            self.last_error[ticket.ticket_hash] = f"{exc.code}: {exc}"
            log.warning("redemption failed; retried on a later block",
                        extra={"ticket": _hex(ticket.ticket_hash), "error": f"{exc.code}: {str(exc)[:300]}"})
            return
        finally:
            self.view.forget_sender(t.sender)
            self.in_flight[t.sender] -= t.face_value
            if self.in_flight[t.sender] <= 0:
                del self.in_flight[t.sender]
        await self._redeemed(ticket, receipt)

    async def _redeemed(self, ticket: SignedTicket, receipt: Any, tx_hash: bytes | None = None) -> None:
        """Settle it redeemed; ``livepeer_value_redeemed`` counts what TicketBroker transferred (its
        WinningTicketTransfer event: less than the face value when the sender's funds fell short)."""
        t = ticket.ticket
        tx = tx_hash if tx_hash is not None else bytes(receipt["transactionHash"])
        amount = transferred(receipt, t.sender, t.recipient) if receipt is not None else None
        value = t.face_value if amount is None else amount
        if value < t.face_value:
            log.warning("winning ticket redeemed for less than its face value: the sender's funds fell short",
                        extra={"ticket": _hex(ticket.ticket_hash), "sender": _hex(t.sender),
                               "face_value": t.face_value, "transferred": value, "tx": _hex(tx)})
        VALUE_REDEEMED.labels(sender=_hex(t.sender)).inc(value)
        await self._settle(ticket, WinnerRedeemed(ticket=ticket, tx_hash=tx, at=time.time(), amount=amount or 0))

    async def _settle_used(self, ticket: SignedTicket) -> None:
        """A used ticket: ours if a journaled transaction of ours for it succeeded, or our WinningTicketRedeemed
        event for it is on chain (a crash before the receipt)."""
        journaled = await self.journaled_redemption(ticket)
        if journaled is not None:
            log.info("redemption found in the transaction journal", extra={"ticket": _hex(ticket.ticket_hash),
                                                                           "tx": _hex(journaled)})
            await self._redeemed(ticket, await self.sender.receipt(journaled), journaled)
            return
        found = await self.find_redemption(ticket)
        if found is None:
            await self._refuse(ticket, RefusalCode.USED, "ticket is used: its redemption event is not within "
                                                         "the ticket's validity window")
            return
        tx, sent_by = found
        if sent_by.lower() == self.sender.address.lower():
            await self._redeemed(ticket, await self.sender.receipt(tx), tx)
        else:
            await self._refuse(ticket, RefusalCode.USED,
                               f"ticket is used: redeemed by another account ({sent_by}) in transaction {_hex(tx)}")

    async def journaled_redemption(self, ticket: SignedTicket) -> bytes | None:
        """The journaled transaction of ours that redeemed ``ticket`` (a receipt with status 1), or None."""
        if self.journal is None:
            return None
        for tx_hash in await self.journal.hashes(redeem_key(ticket.ticket_hash)):
            receipt = await self.sender.receipt(tx_hash)
            if receipt is not None and int(receipt["status"]) == 1:
                return tx_hash
        return None

    async def find_redemption(self, ticket: SignedTicket) -> tuple[bytes, str] | None:
        """The transaction that redeemed ``ticket`` and the account that sent it, from its event.

        Searched from the block where the ticket's creation round began (a ticket is redeemable only from
        then) to the head, newest first, in chunks of ``LOG_CHUNK`` blocks (what RPC providers accept)."""
        t = ticket.ticket
        head = (await self.view._once(("block",), self.eth.block)).number
        start = await self._round_start_block(t.creation_round)
        types = list(EVENTS["TicketBroker.WinningTicketRedeemed"].inputs[2:])
        want = (t.face_value, t.win_prob, t.sender_nonce, ticket.recipient_rand, t.aux_data())
        high = head
        while high >= start:
            low = max(start, high - LOG_CHUNK + 1)
            logs = await self.eth.logs("TicketBroker.WinningTicketRedeemed", low, high,
                                       bytes.fromhex(to_checksum_address(t.sender)[2:]), t.recipient)
            for entry in logs:
                if tuple(abi_decode(types, bytes(entry["data"]))) == want:
                    tx = bytes(entry["transactionHash"])
                    return tx, await self.eth.tx_sender(tx)
            high = low - 1
        return None

    async def _round_start_block(self, round_: int) -> int:
        """The first block (the node's own numbering: L2 on Arbitrum) at or after the L1 block where
        ``round_`` began; rounds count L1 blocks, so on Arbitrum this is a binary search over L2 blocks."""
        if round_ in self._round_starts:
            return self._round_starts[round_]
        head = await self.view._once(("block",), self.eth.block)
        length = await self.eth.call("RoundsManager.roundLength")
        current = await self.eth.call("RoundsManager.currentRound")
        current_start = await self.eth.call("RoundsManager.currentRoundStartBlock")
        target = max(0, current_start - max(0, current - round_) * length)
        if head.l1_number == head.number:  # no L2: rounds count this chain's own blocks
            found = min(target, head.number)
        else:
            low, high = 0, head.number  # the first block whose L1 number reaches target
            while low < high:
                mid = (low + high) // 2
                if (await self.eth.block_at(mid)).l1_number >= target:
                    high = mid
                else:
                    low = mid + 1
            found = low
        self._round_starts = {r: b for r, b in self._round_starts.items() if r >= round_ - 8}
        self._round_starts[round_] = found
        return found


def transferred(receipt: Any, sender: bytes, recipient: bytes) -> int | None:
    """The amount of the receipt's WinningTicketTransfer from ``sender`` to ``recipient``, or None."""
    event = EVENTS["TicketBroker.WinningTicketTransfer"]
    for entry in receipt.get("logs", []) or []:
        topics = [bytes(t) for t in entry.get("topics", [])]
        if len(topics) == 3 and topics[0] == event.topic and topics[1][-20:] == sender and topics[2][-20:] == recipient:
            return int(abi_decode(["uint256"], bytes(entry["data"]))[0])
    return None


async def run_redeemer(redeemer: Redeemer, interval: float) -> None:
    last_block = -1
    while True:
        try:
            block = (await redeemer.eth.block()).number
            if block != last_block:
                await redeemer.pass_once()
                last_block = block
        except ChainError as exc:
            log.warning("redemption pass failed", extra={"error": str(exc)[:300]})
        except Exception:
            log.exception("redemption pass failed")
        await asyncio.sleep(interval)
