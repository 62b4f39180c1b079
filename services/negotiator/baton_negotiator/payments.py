"""Payments as the endpoints need them: offchain (accept, bill nothing) or on-chain (the payment core).

On-chain, ``OnchainPayments`` wires the hardened core: ``TicketParamsIssuer``
quotes, ``PaymentProcessor`` validates, persists winners before credit and
credits exactly once; ``Balances`` keeps the (sender, manifest) credit and the
session's fixed price. A job takes its estimated cost from the balance before it
runs (``reserve``) and settles price x the units it produced after (``settle``):
what it did not use goes back, a failed job gets everything back.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction

from baton_common.errors import BusError
from baton_common.pm import (
    Balances,
    InsufficientBalance,
    MalformedPayment,
    Payment,
    PaymentError,
    PaymentProcessor,
    PriceInfo,
    Scope,
    TicketParams,
    TicketParamsIssuer,
    Validation,
    checksum_address,
    decode_payment_header,
)
from baton_common.schemas.chain import SenderInfo, SenderLookup

from . import metrics
from .clients import CLIENT
from .domain import KeyedBuckets, TokenBucket
from .errors import PaymentUnparseable

__all__ = ["ColdSenderLookups", "OffchainPayments", "OnchainPayments", "Reservation", "SessionBindings",
           "UnverifiedSender", "known_sender_label", "parse_payment", "sender_label"]

log = logging.getLogger("baton.negotiator")
UNFUNDED_TTL = 60.0
"""Seconds the chain's answer for an unfunded sender (no deposit, no reserve) is kept before it is asked again."""
MAX_UNFUNDED = 100_000


def parse_payment(header: str) -> Payment | None:
    """The Livepeer-Payment header (None when empty); 402 PaymentUnparseable when it does not decode."""
    if not header:
        return None
    try:
        return decode_payment_header(header)
    except MalformedPayment as exc:
        raise PaymentUnparseable(f"Could not parse payment: {exc.message}") from None


_PROVEN: set[str] = set()
"""Senders a verified ticket labelled (as many as ``SENDER_LABELS`` gives a label of their own)."""


def sender_label(sender: bytes) -> str:
    """The metrics label of a proven sender (``SENDER_LABELS`` bounds how many get their own)."""
    if len(sender) != 20:
        return metrics.UNKNOWN_SENDER
    address = checksum_address(sender)
    label = metrics.SENDER_LABELS.label(address)
    if label == address:
        _PROVEN.add(address)
    return label


def known_sender_label(sender: bytes) -> str:
    """The label of a sender that only signed a request (GetOrchestrator: any key can): its address once a
    verified ticket proved it, ``unknown`` before, so throwaway keys take no label of their own."""
    address = checksum_address(sender) if len(sender) == 20 else ""
    return address if address in _PROVEN else metrics.UNKNOWN_SENDER


class TooManyNewSenders(BusError):
    code = "too_many_new_senders"


MAX_CLIENT_BUCKETS = 10_000


class ColdSenderLookups:
    """The chain's cold-path sender lookup (one bus request per sender the chain KV does not hold yet), with a
    token bucket (``rate`` a second, as many at once), a share of it per client (``per_client`` a second, the
    client being the IPv4 address or IPv6 /64 in ``clients.CLIENT``), and the answers for unfunded senders (no
    deposit, no reserve) kept ``unfunded_ttl`` seconds: a flood of fresh keys costs the chain service at most
    ``rate`` lookups a second, and one client's flood uses up only its own share, so a new funded gateway
    elsewhere still gets its first quote; past either a new sender is refused (chain_unavailable, ``too many
    new senders``)."""

    def __init__(self, lookup: Callable[[SenderLookup], Awaitable[SenderInfo]], *, rate: float,
                 per_client: float | None = None, unfunded_ttl: float = UNFUNDED_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._ttl = unfunded_ttl
        self._clock = clock
        self._bucket = TokenBucket(rate, max(rate, 1.0), clock())
        share = min(per_client, rate) if per_client else rate
        self._clients = KeyedBuckets(share, max(share, 1.0), MAX_CLIENT_BUCKETS)
        self._unfunded: dict[str, tuple[SenderInfo, float]] = {}

    async def __call__(self, request: SenderLookup) -> SenderInfo:
        now = self._clock()
        cached = self._unfunded.get(request.sender)
        if cached is not None and cached[1] > now:
            return cached[0]
        own = self._clients.get(CLIENT.get(), now)
        if own.refill(now) < 1 or self._bucket.refill(now) < 1:
            raise TooManyNewSenders("too many new senders, retry later")
        own.spend(now)
        self._bucket.spend(now)
        info = await self._lookup(request)
        if info.deposit == 0 and info.reserve == 0:
            if len(self._unfunded) >= MAX_UNFUNDED:
                self._unfunded = {k: v for k, v in self._unfunded.items() if v[1] > now}
                if len(self._unfunded) >= MAX_UNFUNDED:
                    self._unfunded.pop(next(iter(self._unfunded)))
            self._unfunded[request.sender] = (info, now + self._ttl)
        return info


def _label(validation: Validation | None) -> str:
    """A payment's sender label: its address only when one of its ticket signatures proved it."""
    if validation is None or not validation.verified:
        return metrics.UNKNOWN_SENDER
    return sender_label(validation.sender)


@dataclass(eq=False, slots=True)
class Reservation:
    """What a job took from its balance up front: ``price`` x ``units``; ``settle`` bills the true units."""

    sender: bytes
    manifest_id: str
    price: Fraction
    units: int
    settled: bool = False

    @property
    def cost(self) -> Fraction:
        return self.price * max(self.units, 0)


class SessionBindings:
    """Which sender each auth token brought a verified ticket from (this replica's memory), keyed by the
    token's MAC: unforgeable and unique, where an 8-hex session id could be met again by chance.

    AI balances are keyed by (sender, manifest), shared by every session of the
    sender, and a batch AI request's SegData signature covers only the manifest:
    the very same header goes to every orchestrator the gateway uses, and so does
    its GetOrchestrator signature. A payment without tickets therefore proves
    nothing about who sends it. It may spend a balance only under an auth token
    whose session already brought a ticket whose signature recovered to that
    sender (``Validation.verified``); the token itself reaches only the gateway it
    was issued to. That is ``strict`` (``ticketless_spend = verified-session``); the
    default keeps go-livepeer's rule, because stock gateways send ticketless
    payments under each refreshed token while they hold credit.
    """

    def __init__(self, *, ttl: float, strict: bool = True, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.strict = strict
        """False (``ticketless_spend = sender``, go-livepeer's rule): a ticketless payment spends under any token."""
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._bound: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def bind(self, token: str, sender: bytes) -> None:
        self._bound[token] = (sender, self._clock() + self._ttl)
        self._bound.move_to_end(token)
        while len(self._bound) > self._max:
            self._bound.popitem(last=False)

    def sender_of(self, token: str) -> bytes | None:
        entry = self._bound.get(token)
        if entry is None:
            return None
        if entry[1] < self._clock():
            del self._bound[token]
            return None
        return entry[0]


class UnverifiedSender(InsufficientBalance):
    """A payment without tickets under a session no verified ticket of its sender came in: it spends nothing."""

    code = "unverified_sender"


class OffchainPayments:
    """go-livepeer offchain: no ticket params, every payment accepted, nothing billed."""

    onchain = False

    async def tx_cost_multiplier(self, sender: bytes) -> Fraction:
        return Fraction(0)

    async def quote(self, sender: bytes, price: PriceInfo, scope: Scope) -> TicketParams | None:
        return None

    async def receive(self, payment: Payment | None, manifest_id: str, scope: Scope) -> Validation | None:
        return None

    async def session_price(self, sender: bytes, manifest_id: str, quoted: Fraction) -> Fraction:
        return Fraction(0)

    def require_verified(self, validation: Validation | None, sender: bytes, token: str) -> None:
        return None

    def proven(self, sender: bytes, token: str) -> bool:
        return False

    async def check_funds(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> None:
        return None

    async def reserve(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> Reservation:
        return Reservation(sender, manifest_id, Fraction(0), 0)

    async def settle(self, reservation: Reservation, units: int) -> None:
        reservation.settled = True


class OnchainPayments:
    onchain = True

    def __init__(self, issuer: TicketParamsIssuer, processor: PaymentProcessor, balances: Balances,
                 ticket_ev: int, bindings: SessionBindings) -> None:
        self._issuer = issuer
        self._processor = processor
        self._balances = balances
        self._ticket_ev = ticket_ev
        self._bindings = bindings

    async def tx_cost_multiplier(self, sender: bytes) -> Fraction:
        return await self._issuer.tx_cost_multiplier(sender)

    async def quote(self, sender: bytes, price: PriceInfo, scope: Scope) -> TicketParams | None:
        return await self._issuer.quote(sender, price, scope)

    async def receive(self, payment: Payment | None, manifest_id: str, scope: Scope) -> Validation | None:
        """Process ``payment`` for (its sender, ``manifest_id``); PaymentError (400 + go-livepeer's text) if refused."""
        if payment is None:
            return None
        try:
            validation = await self._processor.process(payment, manifest_id, scope)
        except PaymentError as exc:
            validation = getattr(exc, "validation", None)
            metrics.PAYMENT_RECV_ERRORS.labels(_label(validation), exc.code).inc()
            if validation is not None:
                self._count(validation)
            raise
        self._count(validation)
        return validation

    @staticmethod
    def _count(validation: Validation) -> None:
        if validation.retried or not validation.verified:
            return  # the same payment again (counted when it first came), or no ticket proves its sender
        sender = _label(validation)
        metrics.TICKETS_RECV.labels(sender).inc(validation.received)
        metrics.TICKET_VALUE_RECV.labels(sender).inc(float(validation.ev))
        metrics.WINNING_TICKETS_RECV.labels(sender).inc(len(validation.winners))

    async def session_price(self, sender: bytes, manifest_id: str, quoted: Fraction) -> Fraction:
        """The price this session was fixed at by its first payment, else the price quoted now."""
        fixed = await self._balances.fixed_price(sender, manifest_id)
        return quoted if fixed is None else fixed

    def require_verified(self, validation: Validation | None, sender: bytes, token: str) -> None:
        """Bind the auth ``token`` to ``sender`` when this payment's tickets proved it; otherwise the token must
        be bound to ``sender`` already (UnverifiedSender: 400 ``Insufficient balance``, nothing spent)."""
        if validation is not None and validation.verified and validation.sender == sender:
            self._bindings.bind(token, sender)
            return
        if self._bindings.strict and not self.proven(sender, token):
            raise UnverifiedSender()

    def proven(self, sender: bytes, token: str) -> bool:
        """Whether a verified ticket of ``sender`` came under this auth ``token`` (its metrics label then)."""
        return self._bindings.sender_of(token) == sender

    async def check_funds(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> None:
        """400 ``Insufficient balance`` unless the balance holds max(ticket EV, price x ``units``) now (a read:
        nothing is taken; work that costs us before the reservation, an upload's ffprobe, waits for it)."""
        if price > 0:
            await self._balances.require(sender, manifest_id, max(Fraction(self._ticket_ev), price * max(units, 0)))

    async def reserve(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> Reservation:
        """Take price x ``units`` (the job's estimated cost) from the balance now, before the job runs.

        The balance must have held max(ticket EV, cost) (400 ``Insufficient balance``). The debit
        comes first and the check is made on the balance it left, so requests racing on one balance
        cannot together take more than it holds: one that would overdraw it gives its share back and
        is refused.
        """
        reservation = Reservation(sender, manifest_id, price if price > 0 else Fraction(0), max(units, 0))
        if price <= 0:
            return reservation
        ev = Fraction(self._ticket_ev)
        cost = reservation.cost
        await self._balances.require(sender, manifest_id, max(ev, cost))  # a read first: no write for the broke
        if cost > 0:
            left = await self._balances.debit(sender, manifest_id, cost)
            if left < max(ev - cost, Fraction(0)):
                await self._balances.credit(sender, manifest_id, cost)
                raise InsufficientBalance()
        return reservation

    async def settle(self, reservation: Reservation, units: int) -> None:
        """Bill ``units`` against the reservation, once: give back what it took beyond them, or take the rest."""
        if reservation.settled:
            return
        reservation.settled = True
        if reservation.price <= 0:
            return
        change = reservation.cost - reservation.price * max(units, 0)
        if change > 0:
            await self._balances.credit(reservation.sender, reservation.manifest_id, change)
        elif change < 0:
            await self._balances.debit(reservation.sender, reservation.manifest_id, -change)

    async def fixed_price(self, sender: bytes, manifest_id: str) -> Fraction | None:
        return await self._balances.fixed_price(sender, manifest_id)

    async def balance(self, sender: bytes, manifest_id: str) -> Fraction | None:
        return await self._balances.balance(sender, manifest_id)
