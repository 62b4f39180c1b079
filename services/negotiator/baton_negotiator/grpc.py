"""gRPC ``net.Orchestrator`` on grpcio's asyncio server, over TLS with the self-signed certificate.

GetOrchestrator answers from cached state. Errors are gRPC errors whose
details carry go-livepeer's texts (``Invalid orchestrator request: ...``).
"""

from __future__ import annotations

import logging
import time

import grpc

from baton_common.metrics import Outcome
from baton_common.proto import lp_rpc_pb2

from . import metrics
from .clients import CLIENT, client_key, grpc_peer_host
from .errors import refusal_of
from .orchestrator import Orchestrator
from .payments import known_sender_label

__all__ = ["OrchestratorServer"]

log = logging.getLogger("baton.negotiator")


class OrchestratorServer:
    def __init__(self, orch: Orchestrator, on_end_session: callable) -> None:  # type: ignore[valid-type]
        self._orch = orch
        self._on_end_session = on_end_session
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, bind: str, cert: bytes, key: bytes) -> int:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        handlers = {
            "GetOrchestrator": grpc.unary_unary_rpc_method_handler(
                self.get_orchestrator, request_deserializer=lp_rpc_pb2.OrchestratorRequest.FromString,
                response_serializer=lp_rpc_pb2.OrchestratorInfo.SerializeToString),
            "Ping": grpc.unary_unary_rpc_method_handler(
                self.ping, request_deserializer=lp_rpc_pb2.PingPong.FromString,
                response_serializer=lp_rpc_pb2.PingPong.SerializeToString),
            "EndTranscodingSession": grpc.unary_unary_rpc_method_handler(
                self.end_session, request_deserializer=lp_rpc_pb2.EndTranscodingSessionRequest.FromString,
                response_serializer=lp_rpc_pb2.EndTranscodingSessionResponse.SerializeToString),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("net.Orchestrator", handlers),))
        self.port = server.add_secure_port(bind, grpc.ssl_server_credentials([(key, cert)]))
        if not self.port:
            raise OSError(f"cannot listen on {bind}")
        await server.start()
        self._server = server
        return self.port

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)

    async def _answer(self, endpoint: str, context: grpc.aio.ServicerContext, work, label: list[str] | None = None):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        client = CLIENT.set(client_key(grpc_peer_host(context.peer() or "")))
        try:
            reply = await work()
        except Exception as exc:  # mapped to a gRPC status with the gateway-facing text
            refusal = refusal_of(exc)
            sender = label[0] if label else metrics.UNKNOWN_SENDER
            if refusal.code == "internal":
                log.exception("gRPC request failed", extra={"endpoint": endpoint})
            metrics.REFUSALS.labels(refusal.code, sender).inc()
            metrics.REQUESTS.labels(endpoint, str(refusal.outcome)).inc()
            log.info("refused", extra={"endpoint": endpoint, "reason": refusal.code, "gateway": sender,
                                       "client": CLIENT.get()})
            await context.abort(refusal.grpc_status, refusal.message)
        finally:
            CLIENT.reset(client)
        metrics.REQUESTS.labels(endpoint, str(Outcome.OK)).inc()
        metrics.REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        return reply

    async def get_orchestrator(self, req: lp_rpc_pb2.OrchestratorRequest,
                               context: grpc.aio.ServicerContext) -> lp_rpc_pb2.OrchestratorInfo:
        label = ["unknown"]

        async def work() -> lp_rpc_pb2.OrchestratorInfo:
            sender = self._orch.verify_request(req)
            if sender and self._orch.payments.onchain:  # a signature any fresh key can make: no label of its own
                label[0] = known_sender_label(sender)
            return await self._orch.get_orchestrator(req, sender)

        return await self._answer("GetOrchestrator", context, work, label)

    async def ping(self, req: lp_rpc_pb2.PingPong, context: grpc.aio.ServicerContext) -> lp_rpc_pb2.PingPong:
        async def work() -> lp_rpc_pb2.PingPong:
            return lp_rpc_pb2.PingPong(value=self._orch.ping(req.value))

        return await self._answer("Ping", context, work)

    async def end_session(self, req: lp_rpc_pb2.EndTranscodingSessionRequest,
                          context: grpc.aio.ServicerContext) -> lp_rpc_pb2.EndTranscodingSessionResponse:
        async def work() -> lp_rpc_pb2.EndTranscodingSessionResponse:
            session_id = self._orch.tokens.check(req.auth_token, expiry=False)
            self._on_end_session(session_id)
            return lp_rpc_pb2.EndTranscodingSessionResponse()

        return await self._answer("EndTranscodingSession", context, work)
