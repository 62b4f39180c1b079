"""The in-flight test service, paying for real: its requests run the payment processor on NATS KV.

``GET /quote/<sender hex>`` answers serialized TicketParams; ``POST /work/<key>``
takes a serialized ``net.Payment`` and processes it for manifest ``<key>``
with the KV stores. Between spending the nonces and crediting the balance it
waits ``work_seconds``: the window where a shutdown that closed NATS first
used to lose the credit. Run it with ``python -m tests.common.pm.paying_service``.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

from litestar import Litestar, Request, get, post

from baton_common.pm import (
    Balances,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    TicketParamsIssuer,
    address_of,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.pm.nonces import CreditEntry
from baton_common.pm_nats import NONCE_BUCKET_TTL, KvBalanceStore, KvNonceStore, KvWinningTickets
from baton_common.runtime import ServiceContext, run_service
from tests.common.inflight_service import Inflight, InflightSettings
from tests.common.pm.pm_fakes import ORCH_KEY, FakeChain

SECRET = bytes(range(32))
TICKET_EV = 1_000_000_000_000


class SlowBalances(Balances):
    """Balances whose credit starts only after a wait: the request is in flight with its nonces spent."""

    def __init__(self, store, wait: float) -> None:
        super().__init__(store)
        self.wait = wait

    async def apply(self, credit: CreditEntry) -> Fraction:
        await asyncio.sleep(self.wait)
        return await super().apply(credit)


class Paying(Inflight):
    name = "inflight"

    async def start(self, ctx: ServiceContext) -> None:
        orch = address_of(ORCH_KEY)
        chain = FakeChain(active={orch}, gas=1)
        js = ctx.bus.nc.jetstream()
        bucket = self.settings.bucket
        nonces = KvNonceStore(await js.create_key_value(bucket=f"{bucket}_nonces", ttl=NONCE_BUCKET_TTL))
        balances = SlowBalances(KvBalanceStore(await js.create_key_value(bucket=f"{bucket}_balances", ttl=600)),
                                self.settings.work_seconds)
        winners = KvWinningTickets(await js.create_key_value(bucket=f"{bucket}_winners"))
        policy = ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=TICKET_EV)
        self.issuer = TicketParamsIssuer(policy, SECRET, chain, nonces)
        self.processor = PaymentProcessor(PaymentValidator(orch, SECRET, chain, nonces), balances, winners)
        ctx.serve_http(self.paying_app(), f"127.0.0.1:{self.settings.listen_port}")

    def paying_app(self) -> Litestar:
        @get("/quote/{sender:str}")
        async def quote(sender: str) -> bytes:
            params = await self.issuer.quote(bytes.fromhex(sender), Fraction(1))
            return ticket_params_to_pb(params).SerializeToString()

        @post("/work/{key:str}", status_code=200)
        async def work(key: str, request: Request) -> bytes:
            validation = await self.processor.process(decode_payment(await request.body()), key, Scope.base())
            return str(validation.credited).encode()

        return Litestar(route_handlers=[quote, work], logging_config=None, openapi_config=None)


if __name__ == "__main__":
    run_service("inflight", InflightSettings, Paying)
