"""Composition root of the negotiator service: the gateway edge.

Start-up: the ticket secret and ETH key (on-chain), the TLS certificate, the
stores (worker adverts, prices, chain view, payment buckets, bodies), then the
two public listeners: gRPC ``net.Orchestrator`` on -serviceAddr (grpcio) and the
HTTPS job endpoints on ``job_port`` (Hypercorn, HTTP/2 and HTTP/1.1 by ALPN),
named to gateways as ``OrchestratorInfo.transcoder``. The runtime stops the
HTTP listener before NATS drains; ``stop`` ends the gRPC server (still before
the drain) and the watches.
"""

from __future__ import annotations

from pathlib import Path

from baton_common.keys import AUTH_KEY_FILE, auth_token_key
from baton_common.pm import (
    REDEEM_GAS,
    REDEEM_GAS_ARBITRUM,
    Balances,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    TicketParamsIssuer,
    require_durable,
)
from baton_common.pm.secret import load_ticket_secret
from baton_common.pm_nats import KvBalanceStore, KvNonceStore, KvWinningTickets
from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.runtime.listener import hypercorn_config
from baton_common.schemas import Check
from baton_common.schemas.chain import CHAIN, SENDER_LOOKUP_SUBJECT, ChainValue, SenderInfo
from baton_common.schemas.jobs import BODIES
from baton_common.schemas.payments import BALANCES, NONCES, WINNERS
from baton_common.schemas.pricing import PRICES, PriceTable
from baton_common.schemas.workers import WORKERS
from baton_common.streams import ensure_kv

from . import metrics
from .chain import KvChainData, NotedWinners
from .config import NegotiatorSettings
from .dispatch import Dispatcher
from .domain import WorkerPool
from .grpc import OrchestratorServer
from .http import HttpApp
from .jobs import Jobs
from .keystore import load_keystore
from .orchestrator import Orchestrator
from .payments import ColdSenderLookups, OffchainPayments, OnchainPayments, SessionBindings
from .sessions import Sessions
from .state import FixedPrices, KvMirror, TablePrices, mirror_workers, parse_price
from .tls import ensure_certificate
from .tokens import TOKEN_TTL, AuthTokens
from .webhook import AuthWebhook

__all__ = ["Negotiator", "main"]

GRPC_GRACE = 2.0


class Negotiator(ServiceBase[NegotiatorSettings]):
    name = "negotiator"

    def __init__(self, settings: NegotiatorSettings) -> None:
        super().__init__(settings)
        onchain = settings.onchain
        # Raises TicketSecretError (a ConfigError) naming the setting: the service stops at start.
        self.ticket_secret = (
            load_ticket_secret(settings.ticket_secret_file) if onchain or settings.ticket_secret_file else None
        )
        self.eth_key: bytes | None = None
        self.address = b""
        if settings.eth_keystore_path:
            self.eth_key, self.address = load_keystore(settings.eth_keystore_path, settings.eth_password)
        if settings.eth_orch_addr:
            self.address = bytes.fromhex(settings.eth_orch_addr[2:])
        self.pool = WorkerPool()
        self.grpc: OrchestratorServer | None = None
        self.orch: Orchestrator | None = None
        self.chain: KvChainData | None = None
        self._mirrors: list[KvMirror] = []  # type: ignore[type-arg]
        self.job_port = 0

    def _max_sessions(self) -> int:
        if self.settings.max_sessions == "auto":
            return max(self.pool.transcode_capacity(), 1)
        return int(self.settings.max_sessions)

    async def start(self, ctx: ServiceContext) -> None:
        s = self.settings
        bus = ctx.bus
        js = bus.js
        state = Path(s.state_dir)
        cert, key = ensure_certificate(state, s.public_host)
        if self.ticket_secret:
            auth_key = auth_token_key(ticket_secret=self.ticket_secret)
        else:
            auth_key = auth_token_key(key_file=s.auth_key_file or state / AUTH_KEY_FILE)

        workers = mirror_workers(await ensure_kv(js, WORKERS), self.pool)
        await workers.start()
        self._mirrors.append(workers)
        if s.price_source == "table":
            table_mirror: KvMirror[PriceTable] = KvMirror(await ensure_kv(js, PRICES), PriceTable)
            await table_mirror.start()
            self._mirrors.append(table_mirror)
            prices = TablePrices(table_mirror).table
        else:
            prices = FixedPrices(parse_price(s.price_per_unit, s.pixels_per_unit), auto_adjust=s.auto_adjust_price).table

        if s.onchain:
            chain_mirror: KvMirror[ChainValue] = KvMirror(await ensure_kv(js, CHAIN), ChainValue)  # type: ignore[arg-type]
            await chain_mirror.start()
            self._mirrors.append(chain_mirror)

            async def lookup(request):  # noqa: ANN001, ANN202
                return await bus.request(SENDER_LOOKUP_SUBJECT, request, SenderInfo, timeout=3.0)

            self.chain = KvChainData(chain_mirror, ColdSenderLookups(
                lookup, rate=s.sender_lookups_per_second, per_client=s.lookups_per_client))
            nonces = KvNonceStore(await ensure_kv(js, NONCES))
            balance_store = KvBalanceStore(await ensure_kv(js, BALANCES))
            winners = NotedWinners(KvWinningTickets(await ensure_kv(js, WINNERS)), self.chain)
            require_durable(s.network, nonces, balance_store, winners)  # never on per-process memory stores
            balances = Balances(balance_store)
            redeem_gas = REDEEM_GAS_ARBITRUM if "arbitrum" in s.network else REDEEM_GAS
            policy = ParamsPolicy(recipient=self.address, ticket_ev=s.ticket_ev, redeem_gas=redeem_gas,
                                  max_face_value=s.max_face_value, min_gas_price=s.min_gas_price)
            assert self.ticket_secret is not None
            issuer = TicketParamsIssuer(policy, self.ticket_secret, self.chain, nonces)
            validator = PaymentValidator(self.address, self.ticket_secret, self.chain, nonces)
            payments: OffchainPayments | OnchainPayments = OnchainPayments(
                issuer, PaymentProcessor(validator, balances, winners), balances, s.ticket_ev,
                SessionBindings(ttl=TOKEN_TTL, strict=s.ticketless_spend == "verified-session"))
        else:
            payments = OffchainPayments()
        bodies = await bus.bind(BODIES)

        sessions = Sessions(self._max_sessions)
        host = s.public_host if ":" not in s.public_host else f"[{s.public_host}]"
        bind_host = s.bind_host if ":" not in s.bind_host else f"[{s.bind_host}]"
        # The HTTP listener first: its port (job_port 0 = any) goes into the transcoder URI.
        config = hypercorn_config(f"{bind_host}:{s.job_port}", certfile=str(cert), keyfile=str(key))
        config.keep_alive_max_requests = 2**31  # gateways keep one HTTP/2 connection for many jobs
        config.h2_max_concurrent_streams = 1000
        config.read_timeout = int(s.body_read_timeout) + 1  # a connection that sends nothing is closed
        app = HttpApp(None, fetch_private=s.segment_fetch_private,  # type: ignore[arg-type]
                      max_body_bytes_in_flight=s.max_body_bytes_in_flight,
                      max_body_bytes_per_client=s.max_body_bytes_per_client, body_read_timeout=s.body_read_timeout)
        listener = ctx.serve_http(app, config=config, name="jobs")
        self.job_port = listener.port
        transcoder_uri = f"https://{host}:{self.job_port}"
        self.orch = Orchestrator(pool=self.pool, prices=prices, payments=payments, tokens=AuthTokens(auth_key),
                                 address=self.address, eth_key=self.eth_key, transcoder_uri=transcoder_uri,
                                 max_sessions=self._max_sessions, open_sessions=lambda: len(sessions),
                                 webhook=AuthWebhook(s.auth_webhook_url, ttl=TOKEN_TTL, cache_ttl=s.auth_webhook_cache_ttl)
                                 if s.auth_webhook_url else None)
        app.jobs = Jobs(self.orch, Dispatcher(bus.nc, self.pool, bodies), sessions, bodies, timeout_for=s.timeout_for)
        self.grpc = OrchestratorServer(self.orch, sessions.end)
        grpc_port = s.public_addr.rpartition(":")[2]
        await self.grpc.start(f"{bind_host}:{grpc_port}", cert.read_bytes(), key.read_bytes())
        metrics.MAX_SESSIONS.set_function(self._max_sessions)
        ctx.log.info("serving gateways", extra={"grpc": f"{bind_host}:{self.grpc.port}", "transcoder": transcoder_uri,
                                                "mode": "on-chain" if s.onchain else "offchain"})

    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(GRPC_GRACE)
        for mirror in self._mirrors:
            await mirror.stop()
        if self.orch is not None and self.orch.webhook is not None:
            await self.orch.webhook.close()

    def checks(self) -> dict[str, Check]:
        loaded = "loaded" if self.ticket_secret else "not needed offchain"
        out = {"ticket_secret": Check(ok=True, detail=loaded)}
        workers = self.pool.fresh()
        out["workers"] = Check(ok=bool(workers), detail=f"{len(workers)} fresh worker adverts", required=False)
        if self.settings.onchain:
            problem = self.chain.status() if self.chain is not None else "not started"
            out["chain"] = Check(ok=not problem, detail=problem or "fresh", required=True)
        return out


def main() -> None:
    run_service("negotiator", NegotiatorSettings, Negotiator)


if __name__ == "__main__":
    main()
