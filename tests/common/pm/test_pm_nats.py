"""The shared stores on a real nats-server: replicas credit a ticket once."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import msgspec
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from baton_common.pm import (
    BALANCE_IDLE_TTL,
    Balances,
    NonceAlreadySeen,
    NonceVerdict,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    SignedTicket,
    Ticket,
    TicketParamsExpired,
    TicketParamsIssuer,
    WinnerPending,
    WinnerRedeemed,
    WinnerRefused,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.pm_nats import MAX_KEY_LENGTH, NONCE_BUCKET_TTL, KvBalanceStore, KvNonceStore, KvWinningTickets

from .conftest import PRICE, SECRET
from .pm_flows import validate
from .pm_stores import add


@pytest.fixture
async def other_nc(nats_url: str):
    """A second connection: another replica."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def bucket(nc, name: str, ttl: float | None = None):
    return await nc.jetstream().create_key_value(bucket=name, ttl=ttl)


async def test_nonce_store_verdicts(nc, prefix) -> None:
    store = KvNonceStore(await bucket(nc, f"{prefix}_nonces", NONCE_BUCKET_TTL))
    A, S, F = NonceVerdict.ACCEPTED, NonceVerdict.SEEN, NonceVerdict.FULL
    assert await add(store, "k", [1, 2, 2], 100, limit=3) == [A, A, S]
    assert await add(store, "k", [2, 3, 4], 100, limit=3) == [S, A, F]
    assert await add(store, "k", [3, 9], 100, limit=3) == [S, F]
    assert await add(store, "other", [1], 100, limit=3) == [A]


async def test_replicas_racing_on_one_rand_accept_each_nonce_once(nc, other_nc, prefix) -> None:
    name = f"{prefix}_nonces"
    await bucket(nc, name)
    a = KvNonceStore(await nc.jetstream().key_value(name))
    b = KvNonceStore(await other_nc.jetstream().key_value(name))
    nonces = list(range(1, 21))
    results = await asyncio.gather(*(add(store, "rand", [n], 10) for n in nonces for store in (a, b)))
    accepted = [v for (v,) in results if v is NonceVerdict.ACCEPTED]
    assert len(accepted) == len(nonces)


async def test_one_payment_sent_to_two_replicas_is_credited_once(
    nc, other_nc, prefix, orch, chain, policy, gateway
) -> None:
    names = [f"{prefix}_{kind}" for kind in ("nonces", "balances", "winners")]
    for name, ttl in zip(names, (NONCE_BUCKET_TTL, BALANCE_IDLE_TTL, None), strict=False):
        await bucket(nc, name, ttl)

    async def replica(client) -> tuple[PaymentProcessor, Balances]:
        js = client.jetstream()
        nonces, balances, winners = [await js.key_value(name) for name in names]
        validator = PaymentValidator(orch, SECRET, chain, KvNonceStore(nonces))
        ledger = Balances(KvBalanceStore(balances))
        return PaymentProcessor(validator, ledger, KvWinningTickets(winners)), ledger

    (proc_a, ledger_a), (proc_b, ledger_b) = await replica(nc), await replica(other_nc)
    issuer = TicketParamsIssuer(policy, SECRET, chain, KvNonceStore(await nc.jetstream().key_value(names[0])))
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = decode_payment(gateway.pay(params, 3).SerializeToString())
    outcomes = await asyncio.gather(
        proc_a.process(payment, "m", Scope.base()), proc_b.process(payment, "m", Scope.base()), return_exceptions=True
    )
    # One replica spends the nonces; the other meets the same payment's journal entry
    # (or spends nothing): the balance gets the credit once either way.
    assert not any(isinstance(o, BaseException) and not isinstance(o, NonceAlreadySeen) for o in outcomes), outcomes
    ev = Fraction(3) * payment.params.ev()
    assert await ledger_a.balance(gateway.address, "m") == await ledger_b.balance(gateway.address, "m") == ev
    assert await ledger_b.fixed_price(gateway.address, "m") == PRICE


async def test_concurrent_credits_add_up_exactly(nc, other_nc, prefix) -> None:
    name = f"{prefix}_balances"
    await bucket(nc, name, BALANCE_IDLE_TTL)
    a = Balances(KvBalanceStore(await nc.jetstream().key_value(name)))
    b = Balances(KvBalanceStore(await other_nc.jetstream().key_value(name)))
    sender = b"\x01" * 20
    amount = Fraction(10**30 + 1, 3)  # wei amounts far above 2**64 stay exact
    await asyncio.gather(*(ledger.credit(sender, "m", amount) for ledger in (a, b) for _ in range(10)))
    await a.debit_units(sender, "m", Fraction(1, 3), 3)
    assert await b.balance(sender, "m") == 20 * amount - 1
    assert await a.balance(sender, "other") is None


def _ticket(n: int) -> SignedTicket:
    return SignedTicket(
        Ticket(b"\x01" * 20, b"\x02" * 20, 10**20, 2**255, n, b"\x03" * 32, 9, b"\x04" * 32),
        sig=b"\x05" * 65,
        recipient_rand=2**256 - 1,
        expiration_block=77,
    )


async def test_winning_tickets_are_stored_once_per_hash_and_a_settled_one_never_comes_back(nc, prefix) -> None:
    store = KvWinningTickets(await bucket(nc, f"{prefix}_winners"))
    assert await store.pending() == []
    tickets = [_ticket(n) for n in (1, 2, 3)]
    assert await store.store(tickets[0]) is True
    assert await store.store(tickets[0]) is False
    assert await store.store(tickets[1]) is True
    assert await store.store(tickets[2]) is True
    assert await store.pending() == tickets
    assert await store.record(tickets[0].ticket_hash) == WinnerPending(tickets[0])

    redeemed = WinnerRedeemed(tickets[0], tx_hash=b"\xaa" * 32, at=1.0)
    assert await store.settle(tickets[0].ticket_hash, redeemed) == redeemed
    refused = WinnerRefused(tickets[1], code="ticket_used", reason="ticket is used", at=2.0)
    assert await store.settle(tickets[1].ticket_hash, refused) == refused
    assert await store.pending() == [tickets[2]]
    # A replayed winner cannot be stored again, nor its result overwritten.
    assert await store.store(tickets[0]) is False and await store.store(tickets[1]) is False
    other = WinnerRefused(tickets[0], code="expired", reason="later", at=3.0)
    assert await store.settle(tickets[0].ticket_hash, other) == redeemed
    assert await store.record(tickets[0].ticket_hash) == redeemed
    assert await store.pending() == [tickets[2]]


async def test_winners_stored_before_records_read_as_pending(nc, prefix) -> None:
    kv = await bucket(nc, f"{prefix}_winners")
    legacy = _ticket(9)
    await kv.put(legacy.ticket_hash.hex(), msgspec.json.encode(legacy))  # the earlier value: a bare SignedTicket
    store = KvWinningTickets(kv)
    assert await store.pending() == [legacy]
    assert await store.store(legacy) is False


ODD_MANIFEST_IDS = [
    "x" * 3000,  # made nats-server drop the connection when the key embedded the id
    "\u00e9" * 50_000,
    "\U0001f642" * 1000,
    "a.b c*>\t\n\x00/=_-",
    "27_stabilityai/sd-turbo",
    "\ud800",
    "",
]


async def test_any_manifest_id_keys_a_balance_of_its_own(nc, prefix) -> None:
    ledger = Balances(KvBalanceStore(await bucket(nc, f"{prefix}_balances", BALANCE_IDLE_TTL)))
    sender = b"\x0a" * 20
    for n, manifest_id in enumerate(ODD_MANIFEST_IDS, start=1):
        await ledger.fix_price(sender, manifest_id, Fraction(n))
        await ledger.credit(sender, manifest_id, Fraction(n, 7))
    assert nc.is_connected
    for n, manifest_id in enumerate(ODD_MANIFEST_IDS, start=1):
        assert await ledger.balance(sender, manifest_id) == Fraction(n, 7)
        assert await ledger.fixed_price(sender, manifest_id) == n
    assert await ledger.balance(b"\x0b" * 20, ODD_MANIFEST_IDS[0]) is None


async def test_a_key_too_long_is_refused_before_it_reaches_the_server(nc, prefix) -> None:
    store = KvBalanceStore(await bucket(nc, f"{prefix}_balances", BALANCE_IDLE_TTL))
    with pytest.raises(ValueError, match="KV key"):
        await store.update("k" * (MAX_KEY_LENGTH + 1), lambda entry: entry)
    assert nc.is_connected and await store.get("k" * MAX_KEY_LENGTH) is None


async def test_a_replay_is_refused_after_its_nonce_record_expired_while_the_chain_stalled(
    nc, prefix, orch, chain, policy, gateway
) -> None:
    # The incident, scaled down from 24 h to 2 s: the bucket's wall-clock TTL drops
    # the nonce record while the last seen L1 block does not move, so the params
    # still look live by block. Their age, carried in the seed (whole seconds), is
    # below the limit at first and above it once the record is gone.
    ttl = 2.0
    kv = await bucket(nc, f"{prefix}_nonces", ttl)
    store = KvNonceStore(kv)
    before = await store.generation()
    validator = PaymentValidator(orch, SECRET, chain, store, max_params_age=1.5)
    issuer = TicketParamsIssuer(policy, SECRET, chain, store)
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    payment = decode_payment(gateway.pay(params, 2).SerializeToString())
    assert (await validate(validator, payment)).credited == 2
    await asyncio.sleep(ttl)
    for _ in range(100):  # the server expires the record on its own timer
        try:
            await kv.get(payment.params.recipient_rand_hash.hex())
        except KeyNotFoundError:
            break  # the record is gone, and the chain view has not moved
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the nonce record outlived its bucket's TTL")
    replay = await validate(validator, payment)
    assert isinstance(replay.error, TicketParamsExpired) and replay.credited == 0
    # The state marker lapsed with the records: the state started again in a new generation.
    assert await store.generation() != before
