"""The outside-in probe's client: GetOrchestrator over TLS, exactly as a gateway calls it.

A gateway (go-livepeer's broadcaster) dials the orchestrator's public address
over TLS, sends an ``OrchestratorRequest`` with its ETH address and a
personal-sign over ``keccak256(checksummed address)``, and gives up after
500 ms. This client does the same with the probe key, on a fresh channel
each time (a gateway's discovery dials anew), so the latency it measures
includes the TCP and TLS handshakes.

The certificate is self-signed. With a certificate file it is pinned (the
only root trusted, checked against ``tls_name``); without one, the client
takes the certificate the server presents, as go-livepeer gateways do.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from fractions import Fraction

import grpc

from baton_common.pm.encoding import checksum_address, keccak256
from baton_common.pm.signature import address_of, sign_personal
from baton_common.proto import lp_rpc_pb2 as pb

from .domain import Advertised

__all__ = ["GET_ORCHESTRATOR", "ProbeAnswer", "ReserveRefused", "orchestrator_request", "probe_orchestrator"]

GET_ORCHESTRATOR = "/net.Orchestrator/GetOrchestrator"
RESERVE_REFUSED = "insufficient sender reserve"
"""go-livepeer's pm error text (errInsufficientSenderReserve): the only signal the wire carries."""


class ReserveRefused(Exception):
    """The orchestrator answered, but refused ticket params to the probe key (no deposit or reserve)."""


class ProbeAnswer:
    def __init__(self, info: pb.OrchestratorInfo, duration: float) -> None:
        self.info = info
        self.duration = duration

    def advertised(self) -> Advertised:
        info = self.info
        warm = {
            (cap, model): mc.warm
            for cap, cc in info.capabilities.constraints.PerCapability.items()
            for model, mc in cc.models.items()
        }
        prices = {
            (p.capability, p.constraint): Fraction(p.pricePerUnit, p.pixelsPerUnit)
            for p in info.capabilities_prices if p.pixelsPerUnit > 0
        }
        base = None
        if info.HasField("price_info") and info.price_info.pixelsPerUnit > 0:
            base = Fraction(info.price_info.pricePerUnit, info.price_info.pixelsPerUnit)
        return Advertised(
            warm=warm, prices=prices, base_price=base, has_ticket_params=info.HasField("ticket_params"),
            address=("0x" + info.address.hex()) if info.address else "", transcoder=info.transcoder,
        )


def orchestrator_request(private_key: bytes) -> pb.OrchestratorRequest:
    """A gateway's request: its address and a personal-sign over keccak256 of the checksummed address."""
    address = address_of(private_key)
    sig = sign_personal(private_key, keccak256(checksum_address(address).encode()))
    return pb.OrchestratorRequest(address=address, sig=sig)


async def _server_certificate(host: str, port: int, timeout: float) -> bytes:
    pem = await asyncio.wait_for(
        asyncio.to_thread(ssl.get_server_certificate, (host, port), timeout=timeout), timeout=timeout
    )
    return pem.encode()


async def probe_orchestrator(
    address: str, private_key: bytes, *, cert: bytes | None, tls_name: str, timeout: float
) -> ProbeAnswer:
    """Call GetOrchestrator on ``address`` (host:port); raises on any failure, ReserveRefused apart."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    started = time.perf_counter()
    root = cert if cert is not None else await _server_certificate(host, int(port), timeout)
    options = [("grpc.ssl_target_name_override", tls_name), ("grpc.default_authority", tls_name),
               ("grpc.enable_retries", 0)]
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    request = orchestrator_request(private_key)
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        call = channel.unary_unary(
            GET_ORCHESTRATOR,
            request_serializer=pb.OrchestratorRequest.SerializeToString,
            response_deserializer=pb.OrchestratorInfo.FromString,
        )
        remaining = max(0.05, timeout - (time.perf_counter() - started))
        try:
            info = await call(request, timeout=remaining)
        except grpc.aio.AioRpcError as exc:
            if RESERVE_REFUSED in (exc.details() or ""):
                raise ReserveRefused(exc.details()) from None
            raise ConnectionError(f"GetOrchestrator: {exc.code().name}: {exc.details()}") from None
    return ProbeAnswer(info, time.perf_counter() - started)
