"""A stand-in orchestrator for the probe tests: grpcio's TLS server answering GetOrchestrator.

It checks the request the way go-livepeer's orchestrator does (the sig must
recover to the address over keccak256 of the checksummed address), answers
with the OrchestratorInfo the test sets, and can be slowed down or made to
refuse the sender's reserve. The real negotiator replaces it at merge.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from baton_common.pm.encoding import checksum_address, keccak256
from baton_common.pm.signature import recover_personal
from baton_common.proto import lp_rpc_pb2 as pb


def self_signed(folder: Path, host: str = "localhost") -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) shaped like the negotiator's: SAN localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (folder / "cert.pem").write_bytes(cert_pem)
    return cert_pem, key_pem


@dataclass
class StandIn:
    info: pb.OrchestratorInfo = field(default_factory=pb.OrchestratorInfo)
    delay: float = 0.0
    refuse_reserve: bool = False
    senders: list[bytes] = field(default_factory=list)
    """The address of every request that passed the signature check."""
    server: grpc.aio.Server | None = None
    port: int = 0

    async def get_orchestrator(self, request: pb.OrchestratorRequest, context: grpc.aio.ServicerContext
                               ) -> pb.OrchestratorInfo:
        try:
            signer = recover_personal(keccak256(checksum_address(request.address).encode()), request.sig)
        except Exception:
            signer = b""
        if signer != request.address:
            await context.abort(grpc.StatusCode.UNKNOWN, "Invalid orchestrator request: invalid signature")
        self.senders.append(request.address)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse_reserve:
            await context.abort(grpc.StatusCode.UNKNOWN, "insufficient sender reserve")
        return self.info

    async def start(self, cert_pem: bytes, key_pem: bytes) -> int:
        self.server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler("net.Orchestrator", {
            "GetOrchestrator": grpc.unary_unary_rpc_method_handler(
                self.get_orchestrator, request_deserializer=pb.OrchestratorRequest.FromString,
                response_serializer=pb.OrchestratorInfo.SerializeToString),
        })
        self.server.add_generic_rpc_handlers((handler,))
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)])
        self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        await self.server.start()
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)


def orchestrator_info(warm: dict[tuple[int, str], bool], prices: dict[tuple[int, str], int], *,
                      ticket_params: bool = True) -> pb.OrchestratorInfo:
    caps = pb.Capabilities()
    for (cap, model), is_warm in warm.items():
        caps.constraints.PerCapability[cap].models[model].warm = is_warm
        caps.constraints.PerCapability[cap].models[model].capacity = 1
    info = pb.OrchestratorInfo(
        transcoder="https://127.0.0.1:8935", capabilities=caps, address=bytes.fromhex("ab" * 20),
        price_info=pb.PriceInfo(pricePerUnit=1200, pixelsPerUnit=1),
        capabilities_prices=[pb.PriceInfo(pricePerUnit=p, pixelsPerUnit=1, capability=cap, constraint=model)
                             for (cap, model), p in prices.items()],
    )
    if ticket_params:
        info.ticket_params.CopyFrom(pb.TicketParams(recipient=bytes.fromhex("ab" * 20), face_value=b"\x01",
                                                    win_prob=b"\x01"))
    return info
