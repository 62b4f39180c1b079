"""Payments as the endpoints need them: offchain (accept, bill nothing) or on-chain (the payment core).

On-chain, ``OnchainPayments`` wires the hardened core: ``TicketParamsIssuer``
quotes, ``PaymentProcessor`` validates, persists winners before credit and
credits exactly once; ``Balances`` keeps the (sender, manifest) credit and the
session's fixed price, and is debited price x units after a job produced its output.
"""

from __future__ import annotations

import logging
from fractions import Fraction

from baton_common.pm import (
    Balances,
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

from . import metrics
from .errors import PaymentUnparseable

__all__ = ["OffchainPayments", "OnchainPayments", "parse_payment"]

log = logging.getLogger("baton.negotiator")


def parse_payment(header: str) -> Payment | None:
    """The Livepeer-Payment header (None when empty); 402 PaymentUnparseable when it does not decode."""
    if not header:
        return None
    try:
        return decode_payment_header(header)
    except MalformedPayment as exc:
        raise PaymentUnparseable(f"Could not parse payment: {exc.message}") from None


class OffchainPayments:
    """go-livepeer offchain: no ticket params, every payment accepted, nothing billed."""

    onchain = False

    async def tx_cost_multiplier(self, sender: bytes) -> Fraction:
        return Fraction(0)

    async def quote(self, sender: bytes, price: PriceInfo, scope: Scope) -> TicketParams | None:
        return None

    async def receive(self, payment: Payment | None, manifest_id: str, scope: Scope) -> None:
        return None

    async def session_price(self, sender: bytes, manifest_id: str, quoted: Fraction) -> Fraction:
        return Fraction(0)

    async def require_balance(self, sender: bytes, manifest_id: str, price: Fraction, units: int = 0) -> None:
        return None

    async def debit(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> None:
        return None


class OnchainPayments:
    onchain = True

    def __init__(self, issuer: TicketParamsIssuer, processor: PaymentProcessor, balances: Balances,
                 ticket_ev: int) -> None:
        self._issuer = issuer
        self._processor = processor
        self._balances = balances
        self._ticket_ev = ticket_ev

    async def tx_cost_multiplier(self, sender: bytes) -> Fraction:
        return await self._issuer.tx_cost_multiplier(sender)

    async def quote(self, sender: bytes, price: PriceInfo, scope: Scope) -> TicketParams | None:
        return await self._issuer.quote(sender, price, scope)

    async def receive(self, payment: Payment | None, manifest_id: str, scope: Scope) -> Validation | None:
        """Process ``payment`` for (its sender, ``manifest_id``); PaymentError (400 + go-livepeer's text) if refused."""
        if payment is None:
            return None
        sender = checksum_address(payment.sender) if len(payment.sender) == 20 else "unknown"
        try:
            validation = await self._processor.process(payment, manifest_id, scope)
        except PaymentError as exc:
            metrics.PAYMENT_RECV_ERRORS.labels(sender, exc.code).inc()
            validation = getattr(exc, "validation", None)
            if validation is not None:
                self._count(sender, validation)
            raise
        self._count(sender, validation)
        return validation

    @staticmethod
    def _count(sender: str, validation: Validation) -> None:
        if validation.retried:
            return  # the same payment again: counted when it first came
        metrics.TICKETS_RECV.labels(sender).inc(validation.received)
        metrics.TICKET_VALUE_RECV.labels(sender).inc(float(validation.ev))
        metrics.WINNING_TICKETS_RECV.labels(sender).inc(len(validation.winners))

    async def session_price(self, sender: bytes, manifest_id: str, quoted: Fraction) -> Fraction:
        """The price this session was fixed at by its first payment, else the price quoted now."""
        fixed = await self._balances.fixed_price(sender, manifest_id)
        return quoted if fixed is None else fixed

    async def require_balance(self, sender: bytes, manifest_id: str, price: Fraction, units: int = 0) -> None:
        """With a price above 0, the balance must cover one ticket's EV and ``price`` x ``units``, the job's
        cost where its units are known up front (400 ``Insufficient balance``).

        A check, not a reservation: concurrent requests of one sender may each pass against the same balance.
        """
        if price > 0:
            await self._balances.require(sender, manifest_id, max(Fraction(self._ticket_ev), price * max(units, 0)))

    async def debit(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> None:
        if price > 0 and units > 0:
            await self._balances.debit_units(sender, manifest_id, price, units)

    async def fixed_price(self, sender: bytes, manifest_id: str) -> Fraction | None:
        return await self._balances.fixed_price(sender, manifest_id)

    async def balance(self, sender: bytes, manifest_id: str) -> Fraction | None:
        return await self._balances.balance(sender, manifest_id)
