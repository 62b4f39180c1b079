"""ProcessPayment end to end: check, persist the winners, spend the nonces, then credit.

The order is the point. ``PaymentValidator.check`` reads all chain data and
writes nothing; every winning ticket it finds is stored before the nonces are
committed, so no ticket is ever spent without its winner persisted, and a
failure before the commit leaves the payment unspent for the gateway to retry.
Credit comes last. A replayed payment re-offers its winners and the store keeps
one copy per hash.

One window remains: the nonces are committed and the balance write then fails
(see docs/payments.md). The tickets are spent, their winners are safe, and the
gateway is not credited for them.
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
        Any other exception (a store or the chain port failing) means nothing was
        credited; unless it came from the balance write, nothing was spent either.
        """
        checked = await self._validator.check(payment)
        for ticket in checked.winners:
            await self._winners.store(ticket)
        validation = await self._validator.commit(checked)
        if validation.price is not None or validation.ev:
            await self._balances.receive(validation.sender, manifest_id, validation.price, validation.ev)
        if validation.error is not None:
            validation.error.validation = validation  # type: ignore[attr-defined]
            raise validation.error
        return validation
