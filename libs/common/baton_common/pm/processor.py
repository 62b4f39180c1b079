"""ProcessPayment end to end: check, persist the winners, spend the nonces with their credit, then credit.

The order is the point. ``PaymentValidator.check`` reads all chain data and
writes nothing; every winning ticket it finds is stored before the nonces are
committed, so no ticket is ever spent without its winner persisted, and a
failure before the commit leaves the payment unspent for the gateway to retry.
The commit spends the nonces and journals the credit they owe in one write;
the balance then applies that credit exactly once, by its id. If the balance
write fails or the process dies in between, the credit stays journaled, and
the retry of the same payment, on any replica, completes it. A replayed
payment re-offers its winners and the store keeps one record per hash.
"""

from __future__ import annotations

from .balances import Balances, balance_key
from .payment import Payment
from .ports import WinningTickets
from .scope import Scope
from .validator import PaymentValidator, Validation

__all__ = ["PaymentProcessor"]


class PaymentProcessor:
    def __init__(self, validator: PaymentValidator, balances: Balances, winners: WinningTickets) -> None:
        self._validator = validator
        self._balances = balances
        self._winners = winners

    async def process(self, payment: Payment, manifest_id: str, scope: Scope) -> Validation:
        """Credit ``payment`` to (sender, ``manifest_id``); raises its first error after crediting.

        ``manifest_id`` is the auth token's session id for transcoding, the
        manifest id for AI and live video. ``scope`` is what the payment is for:
        ``Scope.base()`` for transcoding, ``Scope.of(capability, model_id)`` for
        an AI job or live stream; params quoted for another scope are refused.
        The raised PaymentError carries the ``Validation`` as ``.validation``
        (credited tickets, winners) for metrics. Any other exception (a store or
        the chain port failing) means nothing was credited; if the nonces were
        spent already, their credit is journaled and a retry of the same payment
        is credited, once.
        """
        checked = await self._validator.check(payment, scope)
        for ticket in checked.winners:
            await self._winners.store(ticket)
        key = balance_key(checked.sender, manifest_id) if len(checked.sender) == 20 else ""
        commit = await self._validator.commit(checked, key)
        credit = commit.credit
        if credit is not None:
            if credit.price_num is not None or credit.amount_num:
                await self._balances.apply(credit)
            self._validator.applied(checked.nonce_key, credit.id)
        validation = commit.validation
        if validation.error is not None:
            validation.error.validation = validation  # type: ignore[attr-defined]
            raise validation.error
        return validation
