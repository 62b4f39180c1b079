"""Converting payment values to and from the protobuf messages (package ``net``).

Decoding is strict where go-livepeer is lenient (it pads or truncates): a field
of the wrong length, a number above 2**256-1 or below zero, or bytes that are not
a protobuf at all each raise a ``MalformedPayment`` subclass naming the field.
Nothing reaches the validator that could make it raise anything else.
"""

from __future__ import annotations

import base64
import binascii

from baton_common.proto import lp_rpc_pb2, redeemer_pb2

from .encoding import UINT256_MAX, ZERO_ADDRESS, ZERO_HASH, mbe
from .errors import InvalidLength, MissingField, NegativeNumber, NumberTooLarge, UndecodablePayment, ZeroAddress
from .payment import Payment, PriceInfo, SenderParams
from .ticket import ExpirationParams, SignedTicket, Ticket, TicketParams

__all__ = [
    "decode_payment",
    "decode_payment_header",
    "max_float_update",
    "payment_from_pb",
    "payment_to_pb",
    "signed_ticket_from_pb",
    "signed_ticket_to_pb",
    "ticket_params_from_pb",
    "ticket_params_to_pb",
]


# --- field decoders -------------------------------------------------------------------


def _uint(field: str, raw: bytes) -> int:
    value = int.from_bytes(raw, "big")
    if value > UINT256_MAX:
        raise NumberTooLarge(field, f"is {len(raw)} bytes long, above 2**256-1")
    return value


def _exact(field: str, raw: bytes, size: int) -> bytes:
    if len(raw) != size:
        raise InvalidLength(field, f"must be {size} bytes, got {len(raw)}")
    return raw


def _address(field: str, raw: bytes, *, nonzero: bool = False) -> bytes:
    address = _exact(field, raw, 20)
    if nonzero and address == ZERO_ADDRESS:
        raise ZeroAddress(field, "is the zero address")
    return address


def _expiration_params(field: str, msg: lp_rpc_pb2.TicketExpirationParams) -> ExpirationParams:
    if msg.creation_round < 0:
        raise NegativeNumber(f"{field}.creation_round", f"is negative ({msg.creation_round})")
    block_hash = msg.creation_round_block_hash
    if block_hash:
        _exact(f"{field}.creation_round_block_hash", block_hash, 32)
    return ExpirationParams(msg.creation_round, block_hash or ZERO_HASH)


def ticket_params_from_pb(msg: lp_rpc_pb2.TicketParams, field: str = "ticket_params") -> TicketParams:
    return TicketParams(
        recipient=_address(f"{field}.recipient", msg.recipient),
        face_value=_uint(f"{field}.face_value", msg.face_value),
        win_prob=_uint(f"{field}.win_prob", msg.win_prob),
        recipient_rand_hash=_exact(f"{field}.recipient_rand_hash", msg.recipient_rand_hash, 32),
        seed=_uint(f"{field}.seed", msg.seed),
        expiration_block=_uint(f"{field}.expiration_block", msg.expiration_block),
        expiration_params=(
            _expiration_params(f"{field}.expiration_params", msg.expiration_params)
            if msg.HasField("expiration_params")
            else None
        ),
    )


def _price(msg: lp_rpc_pb2.PriceInfo) -> PriceInfo:
    if msg.pricePerUnit < 0:
        raise NegativeNumber("expected_price.pricePerUnit", f"is negative ({msg.pricePerUnit})")
    if msg.pixelsPerUnit < 0:
        raise NegativeNumber("expected_price.pixelsPerUnit", f"is negative ({msg.pixelsPerUnit})")
    return PriceInfo(msg.pricePerUnit, msg.pixelsPerUnit)


# --- Payment --------------------------------------------------------------------------


def payment_from_pb(msg: lp_rpc_pb2.Payment) -> Payment:
    """The values of a ``net.Payment``; raises MalformedPayment subclasses."""
    sender = msg.sender
    if sender:
        _address("sender", sender)
    return Payment(
        sender=sender,
        params=ticket_params_from_pb(msg.ticket_params) if msg.HasField("ticket_params") else None,
        expiration_params=(
            _expiration_params("expiration_params", msg.expiration_params)
            if msg.HasField("expiration_params")
            else None
        ),
        tickets=tuple(SenderParams(t.sender_nonce, t.sig) for t in msg.ticket_sender_params),
        expected_price=_price(msg.expected_price) if msg.HasField("expected_price") else None,
    )


def decode_payment(data: bytes) -> Payment:
    """Parse a serialized ``net.Payment``."""
    try:
        msg = lp_rpc_pb2.Payment.FromString(data)
    except Exception as exc:  # DecodeError, or anything upb raises on garbage
        raise UndecodablePayment("message", f"is not a net.Payment protobuf ({exc})") from exc
    return payment_from_pb(msg)


def decode_payment_header(value: str | bytes) -> Payment:
    """Parse a ``Livepeer-Payment`` header: standard base64 of a ``net.Payment``."""
    try:
        if len(value) % 4:
            raise ValueError("length is not a multiple of 4")
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecodablePayment("header", "is not standard base64") from exc
    return decode_payment(data)


def ticket_params_to_pb(params: TicketParams) -> lp_rpc_pb2.TicketParams:
    """The ``TicketParams`` message for an OrchestratorInfo (numbers as minimal big-endian)."""
    msg = lp_rpc_pb2.TicketParams(
        recipient=params.recipient,
        face_value=mbe(params.face_value),
        win_prob=mbe(params.win_prob),
        recipient_rand_hash=params.recipient_rand_hash,
        seed=mbe(params.seed),
        expiration_block=mbe(params.expiration_block),
    )
    if params.expiration_params is not None:
        msg.expiration_params.CopyFrom(_expiration_params_pb(params.expiration_params))
    return msg


def _expiration_params_pb(params: ExpirationParams) -> lp_rpc_pb2.TicketExpirationParams:
    return lp_rpc_pb2.TicketExpirationParams(
        creation_round=params.creation_round,
        creation_round_block_hash=params.creation_round_block_hash,
    )


def payment_to_pb(payment: Payment) -> lp_rpc_pb2.Payment:
    """The ``net.Payment`` a gateway would send for ``payment``."""
    msg = lp_rpc_pb2.Payment(sender=payment.sender)
    if payment.params is not None:
        msg.ticket_params.CopyFrom(ticket_params_to_pb(payment.params))
    if payment.expiration_params is not None:
        msg.expiration_params.CopyFrom(_expiration_params_pb(payment.expiration_params))
    for ticket in payment.tickets:
        msg.ticket_sender_params.add(sender_nonce=ticket.sender_nonce, sig=ticket.sig)
    if payment.expected_price is not None:
        msg.expected_price.pricePerUnit = payment.expected_price.price_per_unit
        msg.expected_price.pixelsPerUnit = payment.expected_price.pixels_per_unit
    return msg


# --- the redeemer ---------------------------------------------------------------------


def signed_ticket_to_pb(signed: SignedTicket) -> redeemer_pb2.Ticket:
    """The ``net.Ticket`` sent to TicketRedeemer.QueueTicket."""
    ticket = signed.ticket
    params = TicketParams(
        recipient=ticket.recipient,
        face_value=ticket.face_value,
        win_prob=ticket.win_prob,
        recipient_rand_hash=ticket.recipient_rand_hash,
        seed=signed.seed,
        expiration_block=signed.expiration_block,
    )  # the expiration params travel beside them, as in go-livepeer's redeemer
    return redeemer_pb2.Ticket(
        ticket_params=ticket_params_to_pb(params),
        sender=ticket.sender,
        expiration_params=_expiration_params_pb(ticket.expiration_params),
        sender_params=lp_rpc_pb2.TicketSenderParams(sender_nonce=ticket.sender_nonce, sig=signed.sig),
        recipient_rand=mbe(signed.recipient_rand),
    )


def signed_ticket_from_pb(msg: redeemer_pb2.Ticket) -> SignedTicket:
    """A winning ticket from QueueTicket; both addresses must be set and non-zero.

    Its ``expiration_params`` must be present with a block hash: TicketBroker
    redeems a ticket only against its creation round's stored block hash, so a
    ticket without one could never be redeemed (MissingField).
    """
    params = ticket_params_from_pb(msg.ticket_params)
    if params.recipient == ZERO_ADDRESS:
        raise ZeroAddress("ticket_params.recipient", "is the zero address")
    if not msg.HasField("expiration_params"):
        raise MissingField("expiration_params", "is required: a ticket without it cannot be redeemed")
    expiration = _expiration_params("expiration_params", msg.expiration_params)
    if expiration.creation_round_block_hash == ZERO_HASH:
        raise MissingField(
            "expiration_params.creation_round_block_hash", "is zero: a ticket without it cannot be redeemed"
        )
    ticket = Ticket(
        recipient=params.recipient,
        sender=_address("sender", msg.sender, nonzero=True),
        face_value=params.face_value,
        win_prob=params.win_prob,
        sender_nonce=msg.sender_params.sender_nonce,
        recipient_rand_hash=params.recipient_rand_hash,
        creation_round=expiration.creation_round,
        creation_round_block_hash=expiration.creation_round_block_hash,
    )
    return SignedTicket(
        ticket=ticket,
        sig=_exact("sender_params.sig", msg.sender_params.sig, 65),
        recipient_rand=_uint("recipient_rand", msg.recipient_rand),
        expiration_block=params.expiration_block,
        seed=params.seed,
    )


def max_float_update(max_float: int) -> redeemer_pb2.MaxFloatUpdate:
    """A ``MaxFloatUpdate`` (a negative max float is sent as 0)."""
    return redeemer_pb2.MaxFloatUpdate(max_float=mbe(max(max_float, 0)))
