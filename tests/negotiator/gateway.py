"""A test gateway: go-livepeer's gateway side, built on the same proto with grpcio and httpx.

It shares none of the negotiator's code. Like Livepeer's SDK it fetches the
orchestrator's self-signed certificate with a TLS handshake (ALPN h2) and pins
it, since grpcio cannot skip verification. It signs its GetOrchestrator
request, SegData and tickets itself with eth-account.
"""

from __future__ import annotations

import base64
import socket
import ssl
from dataclasses import dataclass, field

import grpc
import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from baton_common.proto import lp_rpc_pb2
from tests.common.pm.pm_gateway import Gateway as TicketSigner


def fetch_certificate(host: str, port: int) -> bytes:
    """The server's certificate (PEM), read from a TLS handshake without verification."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return ssl.DER_cert_to_PEM_cert(der).encode()


@dataclass
class TestGateway:
    __test__ = False
    host: str
    port: int
    key: bytes = field(default_factory=lambda: bytes(Account.create().key))
    cert: bytes = b""

    def __post_init__(self) -> None:
        self.cert = fetch_certificate(self.host, self.port)
        creds = grpc.ssl_channel_credentials(root_certificates=self.cert)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.channel = grpc.secure_channel(f"{host}:{self.port}", creds,
                                           options=[("grpc.ssl_target_name_override", "localhost")])
        self.signer = TicketSigner(self.key)

    def close(self) -> None:
        self.channel.close()

    @property
    def address(self) -> bytes:
        return bytes.fromhex(Account.from_key(self.key).address[2:])

    def sign(self, digest: bytes) -> bytes:
        return bytes(Account.sign_message(encode_defunct(primitive=digest), self.key).signature)

    # --- gRPC ------------------------------------------------------------------------

    def _unary(self, method: str, request, reply):  # noqa: ANN001, ANN202
        return self.channel.unary_unary(f"/net.Orchestrator/{method}", request_serializer=request.SerializeToString,
                                        response_deserializer=reply.FromString)

    def get_orchestrator(self, *, signed: bool = True, caps: lp_rpc_pb2.Capabilities | None = None,
                         sig: bytes | None = None) -> lp_rpc_pb2.OrchestratorInfo:
        req = lp_rpc_pb2.OrchestratorRequest(address=self.address)
        if signed:
            req.sig = sig if sig is not None else self.sign(keccak(to_checksum_address(self.address).encode()))
        if caps is not None:
            req.capabilities.CopyFrom(caps)
        return self._unary("GetOrchestrator", lp_rpc_pb2.OrchestratorRequest, lp_rpc_pb2.OrchestratorInfo)(
            req, timeout=10)

    def ping(self, value: bytes) -> bytes:
        return self._unary("Ping", lp_rpc_pb2.PingPong, lp_rpc_pb2.PingPong)(
            lp_rpc_pb2.PingPong(value=value), timeout=10).value

    def end_session(self, token: lp_rpc_pb2.AuthToken) -> None:
        self._unary("EndTranscodingSession", lp_rpc_pb2.EndTranscodingSessionRequest,
                    lp_rpc_pb2.EndTranscodingSessionResponse)(
            lp_rpc_pb2.EndTranscodingSessionRequest(auth_token=token), timeout=10)

    # --- HTTP ------------------------------------------------------------------------

    def http(self, *, http2: bool = False) -> httpx.Client:
        ctx = ssl.create_default_context(cadata=self.cert.decode())
        ctx.check_hostname = False  # pinned: the one certificate is the trust root
        return httpx.Client(verify=ctx, http2=http2, timeout=30)

    def segment_header(self, info: lp_rpc_pb2.OrchestratorInfo, *, manifest: bytes, seq: int = 0,
                       body_hash: bytes | None = None, profiles: tuple[lp_rpc_pb2.VideoProfile, ...] = (),
                       caps: lp_rpc_pb2.Capabilities | None = None, signed: bool = True,
                       token: lp_rpc_pb2.AuthToken | None = None) -> str:
        seg = lp_rpc_pb2.SegData(manifestId=manifest, seq=seq, hash=body_hash if body_hash is not None else keccak(b""),
                                 profiles=b"invalid")
        seg.fullProfiles3.extend(profiles)
        seg.auth_token.CopyFrom(token if token is not None else info.auth_token)
        if caps is not None:
            seg.capabilities.CopyFrom(caps)
        if signed:
            hexes = "".join(keccak(p.name.encode()).hex()[:8] for p in profiles)
            seq_bytes = seq.to_bytes((seq.bit_length() + 7) // 8, "big") if seq else b""
            flat = manifest + seq_bytes.rjust(32, b"\0") + seg.hash + hexes.encode()
            seg.sig = self.sign(keccak(flat))
        return base64.b64encode(seg.SerializeToString()).decode()

    def payment_header(self, info: lp_rpc_pb2.OrchestratorInfo, tickets: int = 1) -> str:
        if not info.HasField("ticket_params"):
            return ""
        payment = self.signer.pay(info.ticket_params, tickets,
                                  price=(info.price_info.pricePerUnit, info.price_info.pixelsPerUnit))
        return base64.b64encode(payment.SerializeToString()).decode()


def ai_caps(capability: int, model_id: str) -> lp_rpc_pb2.Capabilities:
    """The capabilities a gateway sends for one AI model (its default bits plus the model's constraint)."""
    caps = lp_rpc_pb2.Capabilities()
    bits = 0
    for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14):
        bits |= 1 << c
    caps.bitstring.append(bits)
    caps.constraints.PerCapability[capability].models[model_id].warm = True
    return caps
