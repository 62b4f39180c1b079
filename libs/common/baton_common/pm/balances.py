"""Gateway credit, per (sender, session) for transcoding and (sender, manifest) for AI and live.

Spec/livepeer-wire.md sections 2 and 3.5. Credit is an exact fraction of a
wei. A balance idle for 10 minutes is forgotten, together with its fixed
session price. State lives behind the ``BalanceStore`` port, so replicas share it.

Every change is applied exactly once even when the store retries it after a
lost ack: a journaled credit carries its id (``CreditEntry.id``), and a debit
gets an operation id of its own, which the entry keeps until this process knows
the change is settled (it then drops the id at its next write of that entry).
So an entry holds only the ids of changes in flight or interrupted, not one per
payment.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from fractions import Fraction

from .errors import InsufficientBalance
from .nonces import CreditEntry
from .ports import BalanceEntry, BalanceStore

__all__ = ["BALANCE_IDLE_TTL", "OP_RETENTION", "Balances", "balance_key"]

BALANCE_IDLE_TTL = 600.0
"""Seconds after its last change that a balance (and its fixed price) expires."""

OP_RETENTION = 300.0
"""Seconds a debit's operation id stays in an entry if its writer never came back to drop it (a crash).

Only a retry of that same write, within the store's deadline (10 s), ever looks for it.
"""

_SETTLED_KEYS = 10_000


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
        self._settled: OrderedDict[str, set[str]] = OrderedDict()
        """Ids of changes this process knows are settled, per key: dropped at its next write there."""

    def settle(self, key: str, ids: Iterable[str]) -> None:
        """Note that these credit or operation ids need no remembering in ``key``'s entry any more.

        For a credit: its journal entry is gone from the nonce record, so nobody
        will offer it again. The ids go at this process's next write of the entry.
        """
        pending = self._settled.setdefault(key, set())
        pending.update(ids)
        self._settled.move_to_end(key)
        while len(self._settled) > _SETTLED_KEYS:
            self._settled.popitem(last=False)

    def _live(self, entry: BalanceEntry | None, now: float) -> BalanceEntry | None:
        if entry is None:
            return None
        if not getattr(self._store, "expires_idle", False) and now - entry.updated_at > self._ttl:
            return None
        return entry

    async def _change(
        self,
        key: str,
        change: Callable[[BalanceEntry], BalanceEntry | None],
        *,
        op: str | None = None,
    ) -> BalanceEntry | None:
        """Apply ``change`` to the live entry under ``key`` once; ``op`` marks a debit-like change."""
        now = self._clock()
        done = set(self._settled.get(key, ()))

        def apply(current: BalanceEntry | None) -> BalanceEntry | None:
            entry = self._live(current, now) or BalanceEntry()
            if op is not None and op in entry.ops:
                return None  # this very change landed already (its ack was lost)
            changed = change(entry)
            if changed is None:
                return None
            ops = {k: at for k, at in changed.ops.items() if k not in done and now - at <= OP_RETENTION}
            if op is not None:
                ops[op] = now
            return BalanceEntry(
                amount_num=changed.amount_num,
                amount_den=changed.amount_den,
                price_num=changed.price_num,
                price_den=changed.price_den,
                updated_at=now,
                credits={k: v for k, v in changed.credits.items() if k not in done},
                ops=ops,
            )

        entry = await self._store.update(key, apply)
        settled = self._settled.get(key)
        if settled is not None:
            settled -= done
            if not settled:
                del self._settled[key]
        if op is not None:
            self.settle(key, [op])
        return entry

    async def _amount_change(self, sender: bytes, manifest_id: str, delta: Fraction) -> Fraction:
        entry = await self._change(
            balance_key(sender, manifest_id), lambda e: _with_amount(e, e.amount + delta), op=os.urandom(8).hex()
        )
        assert entry is not None
        return entry.amount

    async def credit(self, sender: bytes, manifest_id: str, amount: Fraction) -> Fraction:
        """Add ``amount`` wei, once; returns the new balance. (Payments credit through ``apply``.)"""
        return await self._amount_change(sender, manifest_id, amount)

    async def debit(self, sender: bytes, manifest_id: str, amount: Fraction) -> Fraction:
        """Subtract ``amount`` wei, once (the balance may go negative); returns the new balance."""
        return await self._amount_change(sender, manifest_id, -amount)

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

        def fix(entry: BalanceEntry) -> BalanceEntry | None:
            if entry.fixed_price is not None:
                return None
            return BalanceEntry(
                amount_num=entry.amount_num,
                amount_den=entry.amount_den,
                price_num=price.numerator,
                price_den=price.denominator,
                credits=entry.credits,
                ops=entry.ops,
            )

        entry = await self._change(balance_key(sender, manifest_id), fix)
        fixed = None if entry is None else entry.fixed_price
        return fixed if fixed is not None else price

    async def apply(self, credit: CreditEntry) -> Fraction:
        """Apply a journaled credit (``nonces.CreditEntry``) exactly once: fix the session price
        if none is fixed (and the credit proved one), and add its amount. Returns the balance.

        Applying the same credit again changes nothing: the entry keeps the
        credit's id until the journal entry is gone from its nonce record
        (``settle``), after which nobody offers it again.
        """
        amount = Fraction(credit.amount_num, credit.amount_den)
        price = (
            None
            if credit.price_num is None or credit.price_den is None
            else Fraction(credit.price_num, credit.price_den)
        )

        def pay(entry: BalanceEntry) -> BalanceEntry | None:
            if credit.id in entry.credits:
                return None
            fixed = entry.fixed_price if entry.fixed_price is not None else price
            total = entry.amount + amount
            return BalanceEntry(
                amount_num=total.numerator,
                amount_den=total.denominator,
                price_num=None if fixed is None else fixed.numerator,
                price_den=None if fixed is None else fixed.denominator,
                credits={**entry.credits, credit.id: credit.nonce_key},
                ops=entry.ops,
            )

        entry = await self._change(credit.balance, pay)
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
        ops=entry.ops,
    )
