"""Gateway credit, per (sender, session) for transcoding and (sender, manifest) for AI and live.

Spec/livepeer-wire.md sections 2 and 3.5. Credit is an exact fraction of a
wei. A balance idle for 10 minutes is forgotten, together with its fixed
session price. State lives behind the ``BalanceStore`` port, so replicas share it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from fractions import Fraction

from .errors import InsufficientBalance
from .nonces import CREDIT_ID_RETENTION, CreditEntry
from .ports import BalanceEntry, BalanceStore

__all__ = ["BALANCE_IDLE_TTL", "Balances", "balance_key"]

BALANCE_IDLE_TTL = 600.0
"""Seconds after its last change that a balance (and its fixed price) expires."""


def balance_key(sender: bytes, manifest_id: str) -> str:
    """``<sender hex>.<sha256 hex of the manifest id>``: 105 characters whatever the manifest id.

    The manifest id is chosen by the gateway (any length, any characters), so it
    is hashed rather than embedded: a NATS KV key has to fit a protocol line,
    and one too long makes the server drop the client's connection. Distinct
    manifest ids still get distinct keys. ``sender`` must be a 20-byte address.
    """
    if len(sender) != 20:
        raise ValueError(f"sender must be a 20-byte address, got {len(sender)} bytes")
    digest = hashlib.sha256(manifest_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{sender.hex()}.{digest}"


class Balances:
    """Credits, debits and session prices over a ``BalanceStore``.

    Idle expiry is the store's own when it has one (``expires_idle``: the NATS
    bucket's TTL, on the server's clock), so a replica whose clock is off never
    takes a fresh balance for an expired one; otherwise ``clock`` judges it.
    """

    def __init__(
        self,
        store: BalanceStore,
        *,
        idle_ttl: float = BALANCE_IDLE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ttl = idle_ttl
        self._clock = clock

    def _live(self, entry: BalanceEntry | None, now: float) -> BalanceEntry | None:
        if entry is None:
            return None
        if not getattr(self._store, "expires_idle", False) and now - entry.updated_at > self._ttl:
            return None
        return entry

    async def _change(
        self, sender: bytes, manifest_id: str, change: Callable[[BalanceEntry], BalanceEntry]
    ) -> BalanceEntry:
        now = self._clock()

        def apply(current: BalanceEntry | None) -> BalanceEntry:
            entry = self._live(current, now) or BalanceEntry()
            changed = change(entry)
            return BalanceEntry(
                amount_num=changed.amount_num,
                amount_den=changed.amount_den,
                price_num=changed.price_num,
                price_den=changed.price_den,
                updated_at=now,
                credits={k: at for k, at in changed.credits.items() if now - at <= CREDIT_ID_RETENTION},
            )

        entry = await self._store.update(balance_key(sender, manifest_id), apply)
        assert entry is not None
        return entry

    async def credit(self, sender: bytes, manifest_id: str, amount: Fraction) -> Fraction:
        """Add ``amount`` wei; returns the new balance."""
        entry = await self._change(sender, manifest_id, lambda e: _with_amount(e, e.amount + amount))
        return entry.amount

    async def debit(self, sender: bytes, manifest_id: str, amount: Fraction) -> Fraction:
        """Subtract ``amount`` wei (the balance may go negative); returns the new balance."""
        entry = await self._change(sender, manifest_id, lambda e: _with_amount(e, e.amount - amount))
        return entry.amount

    async def debit_units(self, sender: bytes, manifest_id: str, price: Fraction, units: int) -> Fraction:
        """Debit price x units (pixels, or a pipeline's billed units)."""
        return await self.debit(sender, manifest_id, price * units)

    async def balance(self, sender: bytes, manifest_id: str) -> Fraction | None:
        """The current balance, or None if there is none (or it expired)."""
        entry = self._live(await self._store.get(balance_key(sender, manifest_id)), self._clock())
        return None if entry is None else entry.amount

    async def fixed_price(self, sender: bytes, manifest_id: str) -> Fraction | None:
        """The price fixed for this session by its first payment, if any."""
        entry = self._live(await self._store.get(balance_key(sender, manifest_id)), self._clock())
        return None if entry is None else entry.fixed_price

    async def fix_price(self, sender: bytes, manifest_id: str, price: Fraction) -> Fraction:
        """Fix the session price unless one is fixed already; returns the price in force."""

        def fix(entry: BalanceEntry) -> BalanceEntry:
            if entry.fixed_price is not None:
                return entry
            return BalanceEntry(
                amount_num=entry.amount_num,
                amount_den=entry.amount_den,
                price_num=price.numerator,
                price_den=price.denominator,
                credits=entry.credits,
            )

        entry = await self._change(sender, manifest_id, fix)
        return entry.fixed_price if entry.fixed_price is not None else price

    async def apply(self, credit: CreditEntry) -> Fraction:
        """Apply a journaled credit (``nonces.CreditEntry``) exactly once: fix the session price
        if none is fixed (and the credit proved one), and add its amount. Returns the balance.

        Applying the same credit again changes nothing: the balance keeps the ids
        of the credits it applied for ``CREDIT_ID_RETENTION``.
        """
        now = self._clock()
        amount = Fraction(credit.amount_num, credit.amount_den)
        price = None if credit.price_num is None or credit.price_den is None else Fraction(credit.price_num, credit.price_den)

        def pay(current: BalanceEntry | None) -> BalanceEntry | None:
            entry = self._live(current, now) or BalanceEntry()
            if credit.id in entry.credits:
                return None
            fixed = entry.fixed_price if entry.fixed_price is not None else price
            total = entry.amount + amount
            credits = {k: at for k, at in entry.credits.items() if now - at <= CREDIT_ID_RETENTION}
            credits[credit.id] = credit.at
            return BalanceEntry(
                amount_num=total.numerator,
                amount_den=total.denominator,
                price_num=None if fixed is None else fixed.numerator,
                price_den=None if fixed is None else fixed.denominator,
                updated_at=now,
                credits=credits,
            )

        entry = await self._store.update(credit.balance, pay)
        return Fraction(0) if entry is None else entry.amount

    async def require(self, sender: bytes, manifest_id: str, minimum: Fraction) -> Fraction:
        """The balance, if it is at least ``minimum`` (the ticket EV); else InsufficientBalance."""
        balance = await self.balance(sender, manifest_id)
        if balance is None or balance < minimum:
            raise InsufficientBalance()
        return balance


def _with_amount(entry: BalanceEntry, amount: Fraction) -> BalanceEntry:
    return BalanceEntry(
        amount_num=amount.numerator,
        amount_den=amount.denominator,
        price_num=entry.price_num,
        price_den=entry.price_den,
        credits=entry.credits,
    )
