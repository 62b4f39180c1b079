"""OrchestratorInfo, and the credentials every job request carries (spec sections 1, 2, 3.1, 4).

Everything here answers from cached state: the worker pool, the price table
copy and the chain view behind the payment core's port.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from baton_common.capabilities import pipeline_by_name
from baton_common.pm import (
    InvalidSignature,
    Payment,
    Scope,
    checksum_address,
    keccak256,
    price_info_for,
    recover_personal,
    sign_personal,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.pricing import PriceTable

from . import metrics
from .domain import WorkerPool, auto_adjust, capabilities_for, compatible, price_for_pairs
from .errors import BadInput, BadSegmentHeader, Capped
from .payments import OffchainPayments, OnchainPayments
from .tokens import AuthTokens
from .webhook import AuthWebhook

__all__ = ["Credentials", "Orchestrator", "flatten_segment", "requested_pairs", "scope_pair"]

EMPTY_HASH = keccak256(b"")


def scope_pair(manifest: str) -> tuple[int, str] | None:
    """The (capability, model) a batch AI manifest ``"<cap>_<model>"`` names; None for a transcoding manifest."""
    capability, _, model = manifest.partition("_")
    if capability.isdigit() and model:
        return int(capability), model
    return None


def requested_pairs(caps: lp_rpc_pb2.Capabilities | None) -> list[tuple[int, str]]:
    """The (capability, model) pairs a gateway's capabilities name (PerCapability constraints)."""
    if caps is None:
        return []
    return sorted((c, m) for c, cons in caps.constraints.PerCapability.items() for m in cons.models)


def flatten_segment(seg: lp_rpc_pb2.SegData) -> bytes:
    """go-livepeer's SegTranscodingMetadata.Flatten: what the SegData signature covers."""
    profiles = seg.fullProfiles3 or seg.fullProfiles2 or seg.fullProfiles
    hexes = "".join(keccak256(p.name.encode()).hex()[:8] for p in profiles)
    seq = seg.seq.to_bytes((seg.seq.bit_length() + 7) // 8, "big") if seg.seq > 0 else b""
    return bytes(seg.manifestId) + seq.rjust(32, b"\0") + bytes(seg.hash) + hexes.encode()


@dataclass(frozen=True, slots=True)
class Credentials:
    """A job request's checked headers."""

    payment: Payment | None
    segment: lp_rpc_pb2.SegData
    session_id: str
    sender: bytes
    """Verified sender (20 bytes), or empty offchain without one."""

    @property
    def token_key(self) -> str:
        """The auth token's MAC (hex): names this token, and no other, for ``SessionBindings``."""
        return bytes(self.segment.auth_token.token).hex()

    @property
    def sender_label(self) -> str:
        return checksum_address(self.sender) if len(self.sender) == 20 else metrics.UNKNOWN_SENDER


class Orchestrator:
    def __init__(
        self,
        *,
        pool: WorkerPool,
        prices: Callable[[], PriceTable],
        payments: OffchainPayments | OnchainPayments,
        tokens: AuthTokens,
        address: bytes,
        eth_key: bytes | None,
        transcoder_uri: str,
        max_sessions: Callable[[], int],
        open_sessions: Callable[[], int],
        webhook: AuthWebhook | None = None,
    ) -> None:
        self.pool = pool
        self._prices = prices
        self.payments = payments
        self.tokens = tokens
        self.address = address
        self._key = eth_key
        self.transcoder_uri = transcoder_uri
        self._max_sessions = max_sessions
        self._open_sessions = open_sessions
        self.webhook = webhook

    # --- GetOrchestrator -------------------------------------------------------------

    def verify_request(self, req: lp_rpc_pb2.OrchestratorRequest) -> bytes:
        """The requesting gateway's address: its sig must recover to it on-chain; offchain any is accepted,
        as go-livepeer's VerifySig without an Ethereum client."""
        if not self.payments.onchain:
            return bytes(req.address[-20:]) if len(req.address) >= 20 else b""
        if len(req.address) < 20:
            raise BadInput("Invalid orchestrator request: missing address")
        address = bytes(req.address[-20:])
        message = keccak256(checksum_address(address).encode())
        try:
            if recover_personal(message, bytes(req.sig)) != address:
                raise BadInput("Invalid orchestrator request: invalid signature")
        except InvalidSignature:
            raise BadInput("Invalid orchestrator request: invalid signature") from None
        return address

    async def get_orchestrator(self, req: lp_rpc_pb2.OrchestratorRequest, sender: bytes) -> lp_rpc_pb2.OrchestratorInfo:
        caps = req.capabilities if req.HasField("capabilities") else None
        # -maxSessions counts transcoding sessions: it caps a transcoding gateway, not one asking for AI models
        # (per-model capacity answers those, at the job).
        ai_only = caps is not None and bool(caps.constraints.PerCapability)
        if not ai_only and self._open_sessions() >= self._max_sessions():
            raise Capped("Invalid orchestrator request: OrchestratorCapped")
        if caps is not None and not req.ignoreCapacityCheck and 35 in caps.constraints.PerCapability:
            live = {m.model_id for m in self.pool.models() if m.pipeline == "live-video-to-video"
                    and m.in_use < m.capacity}
            if not live & set(caps.constraints.PerCapability[35].models):
                raise Capped("Invalid orchestrator request: OrchestratorCapped")
        if self.webhook is not None:
            await self.webhook.authenticate(checksum_address(sender if len(sender) == 20 else bytes(20)))
        return await self.info(sender, caps)

    async def price(self, sender: bytes, pairs: list[tuple[int, str]], table: PriceTable | None = None) -> Fraction:
        """The quote for ``pairs`` (the base price if none): auto-adjusted for this sender, clamped to its bounds."""
        table = table or self._prices()
        sender_hex = "0x" + sender.hex() if sender else "default"
        adjust = table.auto_adjust and self.payments.onchain and bool(sender)
        multiplier = await self.payments.tx_cost_multiplier(sender) if adjust else Fraction(0)
        priced = [(c, m, table.capability_price(c, m, sender_hex) or Fraction(0)) for c, m in pairs]
        if any(p > 0 for _, _, p in priced):
            # Each (capability, model) price held within its own bounds, after adjustment; then summed.
            total = Fraction(0)
            for capability, model_id, p in priced:
                p = auto_adjust(p, multiplier) if adjust and p > 0 else p
                total += table.clamp(p, sender_hex, capability=capability, model_id=model_id)
            return total
        webhook = self.webhook if not pairs and len(sender) == 20 else None
        override = webhook.price_for(checksum_address(sender)) if webhook is not None else None
        if override is not None:
            return override  # -authWebhookUrl's priceInfo: that gateway's base price, as is
        price = price_for_pairs(table, sender_hex, [])
        if adjust and price > 0:
            price = auto_adjust(price, multiplier)
        return table.clamp(price, sender_hex)

    async def info(self, sender: bytes, caps: lp_rpc_pb2.Capabilities | None,
                   auth_token: lp_rpc_pb2.AuthToken | None = None) -> lp_rpc_pb2.OrchestratorInfo:
        table = self._prices()
        pairs = requested_pairs(caps)
        price = await self.price(sender, pairs, table)
        if not pairs:  # as go-livepeer's PriceInfo; a sender the table does not name is "default" (bounded labels)
            metrics.TRANSCODING_PRICE.labels(g if (g := "0x" + sender.hex()) in table.gateways else "default").set(float(price))
        price_info = price_info_for(price)
        models = self.pool.models()
        info = lp_rpc_pb2.OrchestratorInfo(
            transcoder=self.transcoder_uri,
            address=self.address,
            capabilities=capabilities_for(models, transcode_capacity=self.pool.transcode_capacity()),
        )
        info.price_info.pricePerUnit, info.price_info.pixelsPerUnit = price_info.price_per_unit, price_info.pixels_per_unit
        if not pairs:
            sender_hex = "0x" + sender.hex() if sender else "default"
            for m in models:
                capability = _capability(m.pipeline)
                p = table.capability_price(capability, m.model_id, sender_hex)
                p = table.base_for(sender_hex) if p is None else p
                info.capabilities_prices.add(pricePerUnit=math.floor(p), pixelsPerUnit=1, capability=capability,
                                             constraint=m.model_id)
            info.hardware.extend(self.pool.hardware())
        if self.payments.onchain and sender:
            scope = Scope.from_pairs(pairs) if pairs else Scope.base()
            params = await self.payments.quote(sender, price_info, scope)
            if params is not None:
                info.ticket_params.CopyFrom(ticket_params_to_pb(params))
        info.auth_token.CopyFrom(auth_token if auth_token is not None else self.tokens.issue())
        return info

    def ping(self, value: bytes) -> bytes:
        """Ping's answer: personal-sign over keccak256(value); empty offchain."""
        return sign_personal(self._key, keccak256(value)) if self._key else b""

    def sign(self, digest: bytes) -> bytes:
        return sign_personal(self._key, digest) if self._key else b""

    # --- job requests ------------------------------------------------------------------

    def credentials(self, payment: Payment | None, segment_header: str) -> Credentials:
        """Check Livepeer-Segment: decodes, signature recovers to the payment's sender, auth token valid (403)."""
        try:
            if len(segment_header) % 4:
                raise ValueError("length")
            seg = lp_rpc_pb2.SegData.FromString(base64.b64decode(segment_header, validate=True))
        except (binascii.Error, ValueError, Exception) as exc:  # noqa: B014 - DecodeError and base64 errors
            raise BadSegmentHeader(f"Invalid Livepeer-Segment header: {type(exc).__name__}") from None
        sender = b""
        if self.payments.onchain:
            if payment is None or len(payment.sender) != 20:
                raise BadSegmentHeader("Could not find Sender for payment")
            try:
                if recover_personal(keccak256(flatten_segment(seg)), bytes(seg.sig)) != payment.sender:
                    raise BadSegmentHeader("Segment sig is invalid")
            except InvalidSignature:
                raise BadSegmentHeader("Segment sig is invalid") from None
            sender = payment.sender
        elif payment is not None and len(payment.sender) == 20:
            sender = payment.sender
        if not seg.HasField("auth_token"):
            raise BadSegmentHeader("missing auth token")
        session_id = self.tokens.check(seg.auth_token)
        if seg.HasField("capabilities"):
            why = compatible(capabilities_for(self.pool.models(), transcode_capacity=self.pool.transcode_capacity()),
                             seg.capabilities, models=False)
            if why:
                raise BadSegmentHeader(f"Capabilities incompatible: {why}")
        return Credentials(payment, seg, session_id, sender)


def _capability(pipeline: str) -> int:
    return pipeline_by_name(pipeline).capability
