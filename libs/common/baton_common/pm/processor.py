"""ProcessPayment end to end: validate, persist the winners, then credit.

The order is the point: a winning ticket is stored before any credit is
given for it, so a crash between receipt and redemption loses no money (a
replayed payment re-offers its winners and the store keeps one copy per hash).
"""

from __future__ import annotations

from .balances import Balances
from .payment import Payment
from .ports import WinningTickets
from .validator import PaymentValidator, Validation

__all__ = ["PaymentProcessor"]


class PaymentProcessor:
    def __init__(self, validator: PaymentValidator, balances: Balances, winners: WinningTickets) -> None:
        self._validator = validator
        self._balances = balances
        self._winners = winners

    async def process(self, payment: Payment, manifest_id: str) -> Validation:
        """Credit ``payment`` to (sender, ``manifest_id``); raises its first error after crediting.

        ``manifest_id`` is the auth token's session id for transcoding, the
        manifest id for AI and live video. The raised PaymentError carries the
        ``Validation`` as ``.validation`` (credited tickets, winners) for metrics.
        """
        validation = await self._validator.validate(payment)
        for ticket in validation.winners:
            await self._winners.store(ticket)
        # The session price is fixed even when a ticket fails, as go-livepeer fixes it first.
        await self._balances.receive(validation.sender, manifest_id, validation.price, validation.ev)
        if validation.error is not None:
            validation.error.validation = validation  # type: ignore[attr-defined]
            raise validation.error
        return validation
