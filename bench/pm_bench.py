"""How fast one core validates tickets, next to how fast libsecp256k1 alone recovers keys.

    .venv/bin/python bench/pm_bench.py [--tickets 20000] [--batch 10]

The full path per payment is what a negotiator runs: protobuf decode, the
payment checks, the recipientRand derivation, signature recovery per ticket,
the win check (``check``), then the nonce store (in memory) and the EV
(``commit``); only persisting winners and crediting are left out. Rates are per CPU second of this one
process, so they are per core. Signature recovery is the floor: the ratio shows
how much the rest of the path costs on top of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from fractions import Fraction

import coincurve

from baton_common.pm import (
    MemoryNonceStore,
    ParamsPolicy,
    Payment,
    PaymentValidator,
    PriceInfo,
    Scope,
    SenderInfo,
    SenderParams,
    TicketParamsIssuer,
    address_of,
    balance_key,
    decode_payment,
    payment_to_pb,
    personal_digest,
    sign_personal,
)

ORCH_KEY = b"\x01" * 32
SECRET = os.urandom(32)
PRICE = Fraction(1200, 1)


class StaticChain:
    """Chain data that never changes: the bench measures the payment core, not the chain."""

    def __init__(self, orch: bytes) -> None:
        self.orch = orch

    async def last_initialized_round(self) -> int:
        return 4000

    async def round_block_hash(self, round_: int) -> bytes:
        return b"\x11" * 32

    async def last_seen_l1_block(self) -> int:
        return 21_000_000

    async def sender_info(self, sender: bytes) -> SenderInfo:
        return SenderInfo(deposit=10**19, reserve_funds_remaining=10**21)

    async def claimed_reserve(self, sender: bytes, claimant: bytes) -> int:
        return 0

    async def active_pool_size(self) -> int:
        return 100

    async def is_active_orchestrator(self, address: bytes, round_: int) -> bool:
        return address == self.orch

    async def gas_price(self) -> int:
        return 100_000_000

    async def pending_redemptions(self, sender: bytes) -> int:
        return 0

    async def ticket_validity_period(self) -> int:
        return 2


async def build_payments(
    tickets: int, batch: int, nonces: MemoryNonceStore
) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """Serialized payments of ``batch`` tickets each, plus (sig, digest) pairs for raw recovery."""
    orch = address_of(ORCH_KEY)
    issuer = TicketParamsIssuer(ParamsPolicy(recipient=orch), SECRET, StaticChain(orch), nonces)
    gateway_key = b"\x02" * 32
    sender = address_of(gateway_key)
    payments: list[bytes] = []
    pairs: list[tuple[bytes, bytes]] = []
    nonces_per_params = 500  # below the 600-nonce limit: a new quote per 500 tickets, as gateways refresh
    params = None
    for first in range(0, tickets, batch):
        if first % nonces_per_params == 0:
            params = await issuer.quote(sender, PRICE)
        assert params is not None
        template = Payment(
            sender=sender,
            params=params,
            expiration_params=params.expiration_params,
            expected_price=PriceInfo(PRICE.numerator, PRICE.denominator),
        )
        entries = []
        for n in range(first % nonces_per_params + 1, first % nonces_per_params + 1 + batch):
            digest = template.ticket(SenderParams(n, b"")).hash()
            sig = sign_personal(gateway_key, digest)
            entries.append(SenderParams(n, sig))
            pairs.append((sig[:64] + bytes([sig[64] - 27]), personal_digest(digest)))
        payment = Payment(
            sender=sender,
            params=params,
            expiration_params=params.expiration_params,
            tickets=tuple(entries),
            expected_price=template.expected_price,
        )
        payments.append(payment_to_pb(payment).SerializeToString())
    return payments, pairs


async def validate_all(payments: list[bytes], nonces: MemoryNonceStore) -> tuple[int, float]:
    orch = address_of(ORCH_KEY)
    validator = PaymentValidator(orch, SECRET, StaticChain(orch), nonces)
    credited = 0
    ev = Fraction(0)
    key = balance_key(b"\x02" * 20, "bench")
    start = time.process_time()
    for data in payments:
        checked = await validator.check(decode_payment(data), Scope.base())
        validation = (await validator.commit(checked, key)).validation
        if validation.error is not None:
            raise SystemExit(f"bench payment refused: {validation.error}")
        credited += validation.credited
        ev += validation.ev
    return credited, time.process_time() - start


def recover_all(pairs: list[tuple[bytes, bytes]]) -> float:
    recover = coincurve.PublicKey.from_signature_and_message
    start = time.process_time()
    for sig, digest in pairs:
        recover(sig, digest, hasher=None)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000, help="tickets to validate (default 20000)")
    parser.add_argument("--batch", type=int, default=10, help="tickets per payment (default 10)")
    args = parser.parse_args()
    if 500 % args.batch:
        raise SystemExit("--batch must divide 500")

    nonces = MemoryNonceStore()
    payments, pairs = asyncio.run(build_payments(args.tickets, args.batch, nonces))
    credited, validate_s = asyncio.run(validate_all(payments, nonces))
    recover_s = recover_all(pairs)

    validated_rate = credited / validate_s
    recover_rate = len(pairs) / recover_s
    print(f"payments: {len(payments)} of {args.batch} tickets ({credited} tickets), one core")
    print(f"tickets validated per second per core: {validated_rate:,.0f}")
    print(f"libsecp256k1 recoveries per second per core (coincurve, same run): {recover_rate:,.0f}")
    print(f"validation / raw recovery: {validated_rate / recover_rate:.2f}")


if __name__ == "__main__":
    main()
