"""Paid requests per second through the payment core on a real nats-server, next to bare KV round trips.

    .venv/bin/python bench/pm_kv_bench.py [--payments 400] [--concurrency 1,16] [--tickets 1]

Baton's path per payment: check (chain reads from memory, signature recovery),
store the winners, one read-modify-write of the nonce record (spend + credit
journal), one read of the state marker (the generation and cleanup mark), and
one read-modify-write of the balance. The baseline, in the same run against the
same server, is the floor any shared-state payment needs: a get and a
compare-and-set update on a nonce key and on a balance key, and nothing else.
The server runs with JetStream on file storage, as compose does (there with
``sync_interval: always``; pass ``--sync-always`` for that).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import nats

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from baton_common.pm import (  # noqa: E402
    Balances,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    TicketParamsIssuer,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.pm_nats import NONCE_BUCKET_TTL, KvBalanceStore, KvNonceStore, KvWinningTickets  # noqa: E402
from tests.common.pm.pm_fakes import ORCH_KEY, FakeChain  # noqa: E402
from tests.common.pm.pm_gateway import Gateway  # noqa: E402
from tests.helpers import free_port, nats_server_binary, wait_for_port  # noqa: E402

SECRET = bytes(range(32))
EV = 10**12


def start_server(store: str, sync_always: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store]
    if sync_always:
        conf = Path(store) / "nats.conf"
        conf.write_text(f'jetstream {{ store_dir: "{store}", sync_interval: always }}\n')
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-c", str(conf)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc, f"nats://127.0.0.1:{port}"


async def baton(url: str, n: int, concurrency: int, tickets: int, tag: str) -> float:
    from baton_common.pm import address_of

    nc = await nats.connect(url)
    js = nc.jetstream()
    nonces = KvNonceStore(await js.create_key_value(bucket=f"{tag}_n", ttl=NONCE_BUCKET_TTL))
    balances = Balances(KvBalanceStore(await js.create_key_value(bucket=f"{tag}_b", ttl=600)))
    winners = KvWinningTickets(await js.create_key_value(bucket=f"{tag}_w"))
    orch = address_of(ORCH_KEY)
    chain = FakeChain(active={orch}, gas=1)
    policy = ParamsPolicy(recipient=orch, ticket_ev=EV, max_face_value=100 * EV)  # about 1 in 100 wins
    issuer = TicketParamsIssuer(policy, SECRET, chain, nonces)
    processor = PaymentProcessor(PaymentValidator(orch, SECRET, chain, nonces), balances, winners)
    # One sender per worker, each with its own params and balance, as independent sessions are.
    gateways = [Gateway(bytes([7 + i]) * 32) for i in range(concurrency)]
    payments: list[list[bytes]] = []
    per_params = 500 // tickets  # fresh params before the 600-nonce limit, as gateways refresh
    for gateway in gateways:
        batch: list[bytes] = []
        for j in range(n // concurrency):
            if j % per_params == 0:
                params = ticket_params_to_pb(await issuer.quote(gateway.address, Fraction(1)))
            batch.append(gateway.pay(params, tickets).SerializeToString())
        payments.append(batch)

    async def worker(i: int) -> None:
        for data in payments[i]:
            await processor.process(decode_payment(data), f"m{i}", Scope.base())

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    for i, gateway in enumerate(gateways):
        assert await balances.balance(gateway.address, f"m{i}") is not None
    await nc.close()
    return elapsed


async def floor(url: str, n: int, concurrency: int, tag: str) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    nonce_kv = await js.create_key_value(bucket=f"{tag}_fn", ttl=NONCE_BUCKET_TTL)
    balance_kv = await js.create_key_value(bucket=f"{tag}_fb", ttl=600)

    async def rmw(kv, key: str, value: bytes) -> None:
        try:
            entry = await kv.get(key)
            await kv.update(key, value, last=entry.revision)
        except nats.js.errors.KeyNotFoundError:
            await kv.create(key, value)

    async def worker(i: int) -> None:
        for j in range(n // concurrency):
            await rmw(nonce_kv, f"n{i}", b'{"nonces":[%d]}' % j)
            await rmw(balance_kv, f"b{i}", b'{"amount":%d}' % j)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    await nc.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=400)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--tickets", type=int, default=1, help="tickets per payment")
    parser.add_argument("--sync-always", action="store_true", help="fsync every write, as compose's nats.conf")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as store:
        proc, url = start_server(store, args.sync_always)
        try:
            print(f"nats-server {'sync_interval: always' if args.sync_always else 'default sync'}, "
                  f"{args.payments} payments of {args.tickets} ticket(s)")
            for n, c in enumerate(int(c) for c in args.concurrency.split(",")):
                base = asyncio.run(floor(url, args.payments, c, f"f{n}{os.getpid()}"))
                ours = asyncio.run(baton(url, args.payments, c, args.tickets, f"b{n}{os.getpid()}"))
                print(
                    f"concurrency {c:>3}: Baton {args.payments / ours:8.0f} payments/s ({1000 * ours / args.payments:.2f} ms), "
                    f"bare nonce+balance CAS {args.payments / base:8.0f}/s ({1000 * base / args.payments:.2f} ms); "
                    f"Baton / floor throughput {base / ours:.2f}"
                )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
