"""ProcessPayment end to end: check, persist the winners, spend the nonces with their credit, then credit.

The order is the point. ``PaymentValidator.check`` reads all chain data and
writes nothing; every winning ticket it finds is stored before the nonces are
committed, so no ticket is ever spent without its winner persisted, and a
failure before the commit leaves the payment unspent for the gateway to retry.
The commit spends the nonces and journals the credit they owe in one write;
the balance then applies that credit exactly once, by its id, and the journal
entry is dropped from the nonce record. If the balance write fails or the
process dies in between, the entry stays journaled, and whoever meets it next
completes it: the retry of the same payment, the next payment under the same
params (on any replica), or the chain service's cleanup of the record. A
replayed payment re-offers its winners and the store keeps one record per hash.
"""

from __future__ import annotations

import asyncio

from baton_common.errors import ConfigError

from .balances import Balances, balance_key
from .nonces import CreditEntry
from .outcomes import CheckedPayment
from .payment import Payment
from .ports import WinningTickets
from .scope import Scope
from .validator import PaymentValidator, Validation

__all__ = ["PaymentProcessor", "require_durable"]


def require_durable(network: str, *stores: object) -> None:
    """ConfigError unless every store is ``durable`` (shared, kept across restarts) when not offchain.

    The memory stores lose balances and journaled credits with the process, and
    are not shared by replicas: a negotiator on-chain must refuse to start on them.
    """
    if network == "offchain":
        return
    for store in stores:
        if not getattr(store, "durable", False):
            raise ConfigError(
                f"-network {network}: the payment store {type(store).__name__} keeps its state in one process "
                "only; on-chain, payments need the NATS stores (baton_common.pm_nats)"
            )


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
        # Entries owed from earlier payments are completed only while the params live:
        # later, their balance may have idled out and forgotten what it applied (the
        # chain service's cleanup completes them before it forgets the record).
        owed = () if checked.expired else commit.owed
        credits = [c for c in (commit.credit, *owed) if c is not None]
        if credits:
            # Shielded: a request cancelled here (the gateway went away) still settles what it spent.
            await asyncio.shield(self._settle(checked, credits))
        validation = commit.validation
        if validation.error is not None:
            validation.error.validation = validation  # type: ignore[attr-defined]
            raise validation.error
        return validation

    async def _settle(self, checked: CheckedPayment, credits: list[CreditEntry]) -> None:
        """Apply each credit to its balance (once each), then drop them from the nonce record."""
        for credit in credits:
            if credit.price_num is not None or credit.amount_num:
                await self._balances.apply(credit)
        await self._validator.settled(checked, [c.id for c in credits])
        for credit in credits:
            self._balances.settle(credit.balance, [credit.id])
