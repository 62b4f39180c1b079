"""Payment integrity on a real nats-server: races, lost acks, contention, restarts, lost buckets."""

from __future__ import annotations

import asyncio
import os
import signal
from fractions import Fraction

import msgspec
import nats
import nats.errors
import pytest

from baton_common.pm import (
    BALANCE_IDLE_TTL,
    BalanceEntry,
    Balances,
    NonceAlreadySeen,
    NonceStateChanged,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    StoreContention,
    StoreValueTooLarge,
    TicketParamsExpired,
    TicketParamsIssuer,
    balance_key,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.pm_nats import NONCE_BUCKET_TTL, KvBalanceStore, KvNonceStore, KvWinningTickets
from baton_common.schemas import payments
from baton_common.streams import StoreMismatch, ensure_kv

from .conftest import PRICE, SECRET, TICKET_EV
from .pm_gateway import Gateway

KINDS = (("nonces", NONCE_BUCKET_TTL), ("balances", BALANCE_IDLE_TTL), ("winners", None))


class Replica:
    """One negotiator replica's payment core on its own NATS connection."""

    def __init__(self, nc, names: dict[str, str], orch: bytes, chain, *, deadline: float = 10.0) -> None:
        self.nc, self.names, self.orch, self.chain, self.deadline = nc, names, orch, chain, deadline

    async def open(self) -> Replica:
        js = self.nc.jetstream(timeout=0.5)
        kv = {kind: await js.key_value(name) for kind, name in self.names.items()}
        self.nonces = KvNonceStore(kv["nonces"], deadline=self.deadline)
        self.balances = Balances(KvBalanceStore(kv["balances"], deadline=self.deadline))
        self.winners = KvWinningTickets(kv["winners"], deadline=self.deadline)
        self.validator = PaymentValidator(self.orch, SECRET, self.chain, self.nonces)
        self.processor = PaymentProcessor(self.validator, self.balances, self.winners)
        policy = ParamsPolicy(recipient=self.orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV)
        self.issuer = TicketParamsIssuer(policy, SECRET, self.chain, self.nonces)
        return self

    async def pay(self, payment, manifest: str = "m"):
        return await self.processor.process(decode_payment(payment.SerializeToString()), manifest, Scope.base())


async def create_buckets(nc, prefix: str) -> dict[str, str]:
    js = nc.jetstream()
    names = {kind: f"{prefix}_{kind}" for kind, _ in KINDS}
    for kind, ttl in KINDS:
        await js.create_key_value(bucket=names[kind], ttl=ttl)
    return names


@pytest.fixture
async def connections(nats_url: str):
    clients = [await nats.connect(nats_url) for _ in range(4)]
    yield clients
    for client in clients:
        await client.close()


async def test_cleanup_between_check_and_commit_credits_no_replay(nc, prefix, orch, chain) -> None:
    """check -> cleanup (deletes the record) -> commit: the re-created record is below the mark."""
    chain.gas = 1
    replica = await Replica(nc, await create_buckets(nc, prefix), orch, chain).open()
    gateway = Gateway.random()
    params = ticket_params_to_pb(await replica.issuer.quote(gateway.address, PRICE))
    assert (await replica.pay(gateway.pay(params, 5))).credited == 5
    credited = await replica.balances.balance(gateway.address, "m")

    replay = decode_payment(gateway.pay(params, nonces=[5, 4, 3, 2, 1]).SerializeToString())
    checked = await replica.validator.check(replay, Scope.base())
    assert not checked.expired  # this replica's view still says the params live
    expiration = int.from_bytes(params.expiration_block, "big")
    assert await replica.nonces.cleanup(expiration) == 1  # the chain service's cleanup runs in between
    commit = await replica.validator.commit(checked, balance_key(gateway.address, "m"))
    assert isinstance(commit.validation.error, TicketParamsExpired) and commit.validation.credited == 0
    assert commit.credit is None
    assert await replica.balances.balance(gateway.address, "m") == credited


async def _stopped(pid: int) -> None:
    for _ in range(200):
        tasks = os.listdir(f"/proc/{pid}/task")
        states = []
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                states.append(stat.read().rsplit(")", 1)[1].split()[0])
        if all(state in ("T", "t") for state in states):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("nats-server did not stop")


class PausingKv:
    """A KeyValue whose next compare-and-set on ``key`` stops the server (SIGSTOP) as it is sent."""

    def __init__(self, kv, pid: int, key_prefix: str, pause: float) -> None:
        self._kv, self._pid, self._prefix, self._pause = kv, pid, key_prefix, pause
        self.paused = 0
        self.errors: list[str] = []

    def __getattr__(self, name):
        return getattr(self._kv, name)

    async def _stop_then(self, call):
        if self.paused == 0:
            self.paused += 1
            os.kill(self._pid, signal.SIGSTOP)
            await _stopped(self._pid)  # every thread of the server has stopped before the write goes out
            asyncio.get_running_loop().call_later(self._pause, os.kill, self._pid, signal.SIGCONT)
        try:
            return await call
        except Exception as exc:
            self.errors.append(type(exc).__name__)
            raise

    async def create(self, key, value, **kw):
        if key.startswith(self._prefix):
            return await self._stop_then(self._kv.create(key, value, **kw))
        return await self._kv.create(key, value, **kw)

    async def update(self, key, value, **kw):
        if key.startswith(self._prefix):
            return await self._stop_then(self._kv.update(key, value, **kw))
        return await self._kv.update(key, value, **kw)


@pytest.mark.parametrize(
    ("deadline", "pause"), [(10.0, 1.5), (1.0, 4.0)], ids=["the-request-recovers", "the-gateway-retries"]
)
async def test_a_nonce_write_whose_ack_is_lost_is_credited_exactly_once(
    private_nats, orch, chain, deadline: float, pause: float
) -> None:
    """The server pauses (SIGSTOP, like a disk stall) between the write and its ack: the client times
    out, the write lands. Either the same request finds its write, or the gateway's retry does."""
    chain.gas = 1
    private_nats.start()
    nc = await nats.connect(private_nats.url)
    try:
        names = await create_buckets(nc, "p")
        replica = await Replica(nc, names, orch, chain, deadline=deadline).open()
        gateway = Gateway.random()
        params = ticket_params_to_pb(await replica.issuer.quote(gateway.address, PRICE))
        assert private_nats.proc is not None
        replica.nonces._kv = PausingKv(replica.nonces._kv, private_nats.proc.pid, params.recipient_rand_hash.hex(), pause)
        payment = gateway.pay(params, 3)
        ev = 3 * Fraction(TICKET_EV)
        if deadline > pause:
            validation = await replica.pay(payment)
            assert validation.credited == 3
        else:
            with pytest.raises(StoreContention):
                await replica.pay(payment)
            await asyncio.sleep(pause - deadline + 0.5)  # the server is back
            assert await replica.balances.balance(gateway.address, "m") is None  # spent, not credited yet
            # the gateway retries the same payment
            retried = await replica.pay(payment)
            assert retried.credited == 3 and retried.retried
        assert replica.nonces._kv.paused == 1
        assert replica.nonces._kv.errors[:1] == ["TimeoutError"]  # the client never saw its ack
        record = msgspec.json.decode((await replica.nonces._kv.get(params.recipient_rand_hash.hex())).value)
        assert record["nonces"] == [1, 2, 3] and record["credits"] == {}  # spent once, nothing owed
        assert await replica.balances.balance(gateway.address, "m") == ev
        with pytest.raises(NonceAlreadySeen):  # a further resend: settled, so a replay
            await replica.pay(payment)
        assert await replica.balances.balance(gateway.address, "m") == ev
    finally:
        if private_nats.proc is not None:
            os.kill(private_nats.proc.pid, signal.SIGCONT)
        await nc.close()


async def test_200_concurrent_payments_on_one_balance_across_4_connections_are_all_credited(
    connections, prefix, orch, chain
) -> None:
    chain.gas = 1
    names = await create_buckets(connections[0], prefix)
    replicas = [await Replica(client, names, orch, chain).open() for client in connections]
    gateway = Gateway.random()
    params = ticket_params_to_pb(await replicas[0].issuer.quote(gateway.address, PRICE))
    payments = [gateway.pay(params, 1) for _ in range(200)]  # one nonce record and one balance for all
    outcomes = await asyncio.gather(
        *(replicas[i % 4].pay(payment) for i, payment in enumerate(payments)), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    assert sum(o.credited for o in outcomes) == 200
    assert await replicas[3].balances.balance(gateway.address, "m") == 200 * Fraction(TICKET_EV)


async def test_a_restart_on_the_shared_stores_credits_no_replay(nc, other_nc_factory, prefix, orch, chain) -> None:
    chain.gas = 1
    names = await create_buckets(nc, prefix)
    first = await Replica(nc, names, orch, chain).open()
    gateway = Gateway.random()
    params = ticket_params_to_pb(await first.issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 4)
    assert (await first.pay(payment)).credited == 4
    restarted = await Replica(await other_nc_factory(), names, orch, chain).open()  # a new process, same buckets
    assert await restarted.nonces.generation() == await first.nonces.generation()
    with pytest.raises(NonceAlreadySeen):
        await restarted.pay(payment)
    with pytest.raises(NonceAlreadySeen):
        await restarted.pay(gateway.pay(params, nonces=[4, 3, 2, 1]))
    assert await restarted.balances.balance(gateway.address, "m") == 4 * Fraction(TICKET_EV)


async def test_a_lost_nonce_bucket_credits_no_replay_to_a_new_or_a_running_replica(
    nc, other_nc_factory, prefix, orch, chain
) -> None:
    chain.gas = 1
    names = await create_buckets(nc, prefix)
    running = await Replica(nc, names, orch, chain).open()
    gateway = Gateway.random()
    params = ticket_params_to_pb(await running.issuer.quote(gateway.address, PRICE))
    payment = gateway.pay(params, 10)
    assert (await running.pay(payment)).credited == 10
    credited = await running.balances.balance(gateway.address, "m")

    js = nc.jetstream()
    await js.delete_key_value(names["nonces"])  # lost: deleted, then re-created empty
    await js.create_key_value(bucket=names["nonces"], ttl=NONCE_BUCKET_TTL)

    fresh = await Replica(await other_nc_factory(), names, orch, chain).open()
    for replica in (fresh, running):  # a replica started after the loss, and one that cached the old state
        for replay in (payment, gateway.pay(params, nonces=list(range(10, 0, -1)))):
            with pytest.raises(TicketParamsExpired) as refused:
                await replica.pay(replay)
            assert refused.value.validation.credited == 0
    assert await running.balances.balance(gateway.address, "m") == credited
    assert await fresh.nonces.generation() == await running.nonces.generation()
    # Fresh params, quoted in the new generation, pay as usual on both.
    new = ticket_params_to_pb(await fresh.issuer.quote(gateway.address, PRICE))
    assert (await running.pay(gateway.pay(new, 1))).credited == 1


async def test_a_running_replica_detects_the_state_reset_under_it(nc, prefix, orch, chain) -> None:
    names = await create_buckets(nc, prefix)
    replica = await Replica(nc, names, orch, chain).open()
    old = await replica.nonces.generation()
    js = nc.jetstream()
    await js.delete_key_value(names["nonces"])
    await js.create_key_value(bucket=names["nonces"], ttl=NONCE_BUCKET_TTL)

    def change(record):
        record.nonces.append(1)
        return record

    with pytest.raises(NonceStateChanged):
        await replica.nonces.update("ab" * 32, 10**9, old, change)
    assert await replica.nonces.generation() != old


@pytest.fixture
async def other_nc_factory(nats_url: str):
    opened = []

    async def connect():
        client = await nats.connect(nats_url)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.close()


@pytest.mark.parametrize("spec_name", ["NONCES", "BALANCES", "WINNERS"])
async def test_a_misconfigured_payment_bucket_is_refused_at_bind(nc, prefix, spec_name: str) -> None:
    """A nonce bucket whose TTL drops records early would let replays in; a balance bucket without
    the idle TTL would keep credit forever: binding checks, and refuses by name."""
    spec = msgspec.structs.replace(getattr(payments, spec_name), bucket=f"{prefix}_{spec_name.lower()}")
    js = nc.jetstream()
    await js.create_key_value(bucket=spec.bucket, ttl=60.0, history=5)
    with pytest.raises(StoreMismatch, match=f"{spec.bucket}.*max_age: declared.*history: declared 1, found 5") as refused:
        await ensure_kv(js, spec)
    assert "refusing to start" in str(refused.value)
    fresh = msgspec.structs.replace(spec, bucket=f"{prefix}_{spec_name.lower()}_ok")
    await ensure_kv(js, fresh)
    await ensure_kv(js, fresh)  # binding the bucket it created again is quiet


async def test_many_payments_on_one_balance_keep_its_value_and_its_nonce_record_small(nc, prefix, orch, chain) -> None:
    """Every payment's credit id used to stay in the balance for 15 minutes: ~19k payments made the value
    pass NATS's max payload, and the server closed the connection. Settled ids now leave at once."""
    chain.gas = 1
    names = await create_buckets(nc, prefix)
    replica = await Replica(nc, names, orch, chain).open()
    gateway = Gateway.random()
    params = ticket_params_to_pb(await replica.issuer.quote(gateway.address, PRICE))
    for _ in range(300):
        await replica.pay(gateway.pay(params, 1))
    js = nc.jetstream()
    balance = await (await js.key_value(names["balances"])).get(balance_key(gateway.address, "m"))
    record = await (await js.key_value(names["nonces"])).get(params.recipient_rand_hash.hex())
    assert len(balance.value) < 1024, balance.value
    assert msgspec.json.decode(record.value)["credits"] == {}
    assert await replica.balances.balance(gateway.address, "m") == 300 * Fraction(TICKET_EV)


async def test_a_value_past_the_size_limit_is_refused_before_it_is_sent(nc, prefix) -> None:
    store = KvBalanceStore(await nc.jetstream().create_key_value(bucket=f"{prefix}_b", ttl=BALANCE_IDLE_TTL))
    huge = BalanceEntry(ops={f"{n:08x}": 0.0 for n in range(20_000)})
    with pytest.raises(StoreValueTooLarge):
        await store.update("k", lambda current: huge)
    assert nc.is_connected and await store.get("k") is None


class LostAckKv:
    """A KeyValue whose first update lands, then another writer's lands, then the client times out."""

    def __init__(self, kv, other_write) -> None:
        self._kv, self._other_write, self.lost = kv, other_write, 0

    def __getattr__(self, name):
        return getattr(self._kv, name)

    async def update(self, key, value, **kw):
        revision = await self._kv.update(key, value, **kw)
        if self.lost == 0:
            self.lost += 1
            await self._other_write()
            raise nats.errors.TimeoutError
        return revision


async def test_a_debit_whose_ack_is_lost_is_applied_once_even_after_another_write(nc, prefix) -> None:
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=f"{prefix}_b", ttl=BALANCE_IDLE_TTL)
    sender = b"\x01" * 20
    other = Balances(KvBalanceStore(await js.key_value(f"{prefix}_b")))
    ours = Balances(KvBalanceStore(kv))
    await ours.credit(sender, "m", Fraction(10))
    ours._store._kv = LostAckKv(kv, lambda: other.credit(sender, "m", Fraction(5)))  # another replica pays meanwhile
    assert await ours.debit(sender, "m", Fraction(1)) == 14
    assert ours._store._kv.lost == 1
    assert await other.balance(sender, "m") == 14  # 10 + 5 - 1: the debit once


async def test_cleanup_refuses_a_block_far_past_its_mark(nc, prefix) -> None:
    store = KvNonceStore(await nc.jetstream().create_key_value(bucket=f"{prefix}_n", ttl=NONCE_BUCKET_TTL))
    await store.cleanup(21_000_000)
    with pytest.raises(ValueError, match="is it an L1 block number"):
        await store.cleanup(300_000_000)  # an Arbitrum (L2) block number would expire every live params
    assert await store.cleanup(21_000_500) == 0


@pytest.mark.parametrize("replicas", [1, 4])
async def test_concurrent_paid_requests_with_debits_credit_each_payment_once(
    connections, prefix, orch, chain, replicas: int
) -> None:
    """Each request pays 2 tickets and then spends half a ticket, all under one set of params at once:
    requests that complete each other's owed entries used to credit them again (59 tickets for 15)."""
    chain.gas = 1
    names = await create_buckets(connections[0], prefix)
    nodes = [await Replica(client, names, orch, chain).open() for client in connections[:replicas]]
    gateway = Gateway.random()
    params = ticket_params_to_pb(await nodes[0].issuer.quote(gateway.address, PRICE))
    ev = Fraction(TICKET_EV)

    async def job(i: int, payment) -> None:
        node = nodes[i % replicas]
        await node.pay(payment)
        await node.balances.debit(gateway.address, "m", ev / 2)

    payments = [gateway.pay(params, 2) for _ in range(40)]
    await asyncio.gather(*(job(i, p) for i, p in enumerate(payments)))
    assert await nodes[0].balances.balance(gateway.address, "m") == 40 * 2 * ev - 40 * ev / 2
    record = await (await connections[0].jetstream().key_value(names["nonces"])).get(params.recipient_rand_hash.hex())
    assert msgspec.json.decode(record.value)["credits"] == {}


async def test_a_stale_copy_of_an_applied_entry_is_not_applied_again(nc, prefix, orch, chain) -> None:
    """A completer holding an old copy of an entry, after the entry left its record: the balance remembers."""
    chain.gas = 1
    names = await create_buckets(nc, prefix)
    node = await Replica(nc, names, orch, chain).open()
    gateway = Gateway.random()
    params = ticket_params_to_pb(await node.issuer.quote(gateway.address, PRICE))
    payment = decode_payment(gateway.pay(params, 3).SerializeToString())
    checked = await node.validator.check(payment, Scope.base())
    commit = await node.validator.commit(checked, balance_key(gateway.address, "m"))
    assert commit.credit is not None
    await node.balances.apply(commit.credit)
    await node.validator.settled(checked, [commit.credit.id])
    await node.balances.debit(gateway.address, "m", Fraction(1))
    await node.balances.apply(commit.credit)  # the stale copy, offered again
    assert await node.balances.balance(gateway.address, "m") == 3 * Fraction(TICKET_EV) - 1


def test_only_young_owed_entries_are_completed() -> None:
    from baton_common.pm import COMPLETION_AGE, CreditEntry, completable

    young, old = (CreditEntry(id=i, balance="b", nonce_key="k", seq=n, at=t) for i, n, t in (("a", 1, 1000.0), ("b", 2, 0.0)))
    assert completable([young, old], now=1000.0 + COMPLETION_AGE - 1) == (young,)
    assert COMPLETION_AGE < BALANCE_IDLE_TTL
