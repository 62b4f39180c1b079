"""Balances per (sender, session or manifest): credit, debit, price fixing, idle expiry."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton_common.pm import Balances, CreditEntry, InsufficientBalance, MemoryBalanceStore, balance_key

A = b"\xaa" * 20
B = b"\xbb" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def balances(clock: Clock) -> Balances:
    return Balances(MemoryBalanceStore(), clock=clock)


async def test_credit_and_debit_are_exact(balances: Balances) -> None:
    assert await balances.balance(A, "s1") is None
    assert await balances.credit(A, "s1", Fraction(10, 3)) == Fraction(10, 3)
    assert await balances.credit(A, "s1", Fraction(2, 3)) == 4
    assert await balances.debit_units(A, "s1", Fraction(1, 7), 14) == 2
    assert await balances.debit(A, "s1", Fraction(5)) == -3  # work already done is still debited
    assert await balances.balance(A, "s1") == -3


async def test_balances_are_keyed_by_sender_and_session(balances: Balances) -> None:
    await balances.credit(A, "s1", Fraction(5))
    await balances.credit(B, "s1", Fraction(7))
    await balances.credit(A, "27_stabilityai/sd-turbo", Fraction(11))
    assert await balances.balance(A, "s1") == 5
    assert await balances.balance(B, "s1") == 7
    assert await balances.balance(A, "27_stabilityai/sd-turbo") == 11
    assert await balances.balance(B, "27_stabilityai/sd-turbo") is None


async def test_insufficient_balance(balances: Balances) -> None:
    with pytest.raises(InsufficientBalance, match="^Insufficient balance$"):
        await balances.require(A, "s1", Fraction(1))
    await balances.credit(A, "s1", Fraction(99, 100))
    with pytest.raises(InsufficientBalance):
        await balances.require(A, "s1", Fraction(1))
    await balances.credit(A, "s1", Fraction(1, 100))
    assert await balances.require(A, "s1", Fraction(1)) == 1


async def test_the_first_price_fixed_stays(balances: Balances) -> None:
    assert await balances.fixed_price(A, "s1") is None
    assert await balances.fix_price(A, "s1", Fraction(3, 2)) == Fraction(3, 2)
    assert await balances.fix_price(A, "s1", Fraction(5)) == Fraction(3, 2)
    await balances.credit(A, "s1", Fraction(1))
    assert await balances.fixed_price(A, "s1") == Fraction(3, 2)
    assert await balances.fixed_price(A, "s2") is None
    assert await balances.fix_price(A, "free", Fraction(0)) == 0
    assert await balances.fix_price(A, "free", Fraction(5)) == 0  # a fixed zero price is a price too


async def test_idle_balances_expire_after_ten_minutes(balances: Balances, clock: Clock) -> None:
    await balances.credit(A, "s1", Fraction(5))
    await balances.fix_price(A, "s1", Fraction(2))
    clock.now += 599
    await balances.debit(A, "s1", Fraction(1))  # activity keeps it alive
    clock.now += 599
    assert await balances.balance(A, "s1") == 4
    clock.now += 2
    assert await balances.balance(A, "s1") is None
    assert await balances.fixed_price(A, "s1") is None
    assert await balances.credit(A, "s1", Fraction(1)) == 1  # starts afresh, price unfixed
    assert await balances.fixed_price(A, "s1") is None


@given(st.binary(min_size=20, max_size=20), st.text() | st.text(min_size=3000, max_size=5000))
def test_keys_are_short_valid_nats_kv_keys_for_any_manifest_id(sender: bytes, manifest_id: str) -> None:
    key = balance_key(sender, manifest_id)
    assert re.fullmatch(r"[0-9a-f]{40}\.[0-9a-f]{64}", key)  # 105 characters whatever the manifest id
    assert balance_key(sender, manifest_id + "x") != key
    assert balance_key(bytes(20) if sender != bytes(20) else b"\x01" * 20, manifest_id) != key


def test_keys_need_a_20_byte_sender() -> None:
    assert balance_key(A, "\ud800 lone surrogate") != balance_key(A, "")
    for sender in (b"", A[:19], A + b"\x00"):
        with pytest.raises(ValueError, match="20-byte"):
            balance_key(sender, "m")


def credit(id_: str, amount: Fraction, price: Fraction | None = None, key: str | None = None) -> CreditEntry:
    return CreditEntry(
        id=id_,
        nonce_key="ab" * 32,
        seq=ord(id_[0]),
        expiration_block=100,
        balance=key or balance_key(A, "s1"),
        amount_num=amount.numerator,
        amount_den=amount.denominator,
        price_num=None if price is None else price.numerator,
        price_den=None if price is None else price.denominator,
        at=1_700_000_000.0,
    )


async def test_a_journaled_credit_fixes_the_price_once_and_is_applied_once(balances: Balances) -> None:
    assert await balances.apply(credit("a", Fraction(1, 2))) == Fraction(1, 2)  # no proven price
    assert await balances.fixed_price(A, "s1") is None
    assert await balances.apply(credit("b", Fraction(3), Fraction(2))) == Fraction(7, 2)
    assert await balances.apply(credit("c", Fraction(1, 2), Fraction(9))) == 4
    assert await balances.apply(credit("d", Fraction(0))) == 4
    assert await balances.fixed_price(A, "s1") == 2
    for again in ("a", "b", "c", "d"):  # a retry or another replica applying the same credit
        assert await balances.apply(credit(again, Fraction(100))) == 4
    assert await balances.balance(A, "s1") == 4


async def test_a_store_that_expires_idle_entries_itself_is_trusted_over_the_local_clock(clock: Clock) -> None:
    """A replica whose clock runs 20 minutes ahead must not take a fresh balance for an expired one."""

    class ServerExpiring(MemoryBalanceStore):
        expires_idle = True

    store = ServerExpiring()
    honest = Balances(store, clock=clock)
    await honest.credit(A, "s1", Fraction(5))
    skewed = Balances(store, clock=lambda: clock() + 1200)
    assert await skewed.balance(A, "s1") == 5
    assert await skewed.credit(A, "s1", Fraction(1)) == 6
