"""The negotiator's refusals: each with a machine-readable ``code`` (the refusal metric's reason),
the HTTP status go-livepeer answers with, and the gateway-facing text.

The domain raises only these (and the payment core's ``PaymentError``s, mapped in
``refusal_of``); the HTTP and gRPC adapters translate them in one place.
"""

from __future__ import annotations

import grpc

from baton_common.errors import BatonError, BusError
from baton_common.metrics import Outcome
from baton_common.pm import BalanceError, PaymentError, QuoteError, StoreContention

__all__ = [
    "BadInput",
    "BadSegmentHeader",
    "BodyTooLarge",
    "Capped",
    "ChainUnavailable",
    "InsufficientCapacity",
    "InvalidAuthToken",
    "JobFailed",
    "NegotiatorError",
    "NoFixedPrice",
    "NotFound",
    "OrchestratorBusy",
    "PaymentUnparseable",
    "Refusal",
    "refusal_of",
]


class NegotiatorError(BatonError):
    """A request the negotiator refuses or fails; ``message`` goes to the gateway as is."""

    code = "negotiator"
    status_code = 500
    outcome = Outcome.FAILED
    grpc_status = grpc.StatusCode.INTERNAL


class BadInput(NegotiatorError):
    code = "bad_input"
    status_code = 400
    outcome = Outcome.CLIENT_ERROR
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class UnknownPipeline(BadInput):
    code = "unknown_model"


class NotFound(NegotiatorError):
    code = "not_found"
    status_code = 404
    outcome = Outcome.CLIENT_ERROR


class BodyTooLarge(NegotiatorError):
    code = "body_too_large"
    status_code = 413
    outcome = Outcome.CLIENT_ERROR


class PaymentUnparseable(NegotiatorError):
    """go-livepeer: an unparseable Livepeer-Payment header is 402."""

    code = "payment_unparseable"
    status_code = 402
    outcome = Outcome.PAYMENT_ERROR


class BadSegmentHeader(NegotiatorError):
    """A Livepeer-Segment header that does not decode, or whose signature does not recover: 403."""

    code = "bad_segment_header"
    status_code = 403
    outcome = Outcome.CLIENT_ERROR
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class InvalidAuthToken(BadSegmentHeader):
    code = "invalid_auth_token"


class Capped(NegotiatorError):
    """go-livepeer's OrchestratorCapped: the session limit (-maxSessions) is reached."""

    code = "capped"
    status_code = 403
    outcome = Outcome.CAPACITY
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str = "OrchestratorCapped") -> None:
        super().__init__(message)


class OrchestratorBusy(NegotiatorError):
    code = "busy"
    status_code = 503
    outcome = Outcome.CAPACITY

    def __init__(self, message: str = "OrchestratorBusy") -> None:
        super().__init__(message)


class InsufficientCapacity(NegotiatorError):
    code = "capacity"
    status_code = 503
    outcome = Outcome.CAPACITY
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str = "insufficient capacity") -> None:
        super().__init__(message)


class ChainUnavailable(NegotiatorError):
    """Chain data is missing or stale: no ticket params can be quoted or checked."""

    code = "chain_unavailable"
    status_code = 503
    outcome = Outcome.FAILED
    grpc_status = grpc.StatusCode.UNAVAILABLE


class JobFailed(NegotiatorError):
    code = "job_failed"
    status_code = 500
    outcome = Outcome.FAILED


class Refusal(NegotiatorError):
    """Any other error, wrapped with its code, status and outcome."""

    def __init__(self, message: str, *, code: str, status_code: int, outcome: Outcome,
                 grpc_status: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        super().__init__(message)
        self.code, self.status_code, self.outcome, self.grpc_status = code, status_code, outcome, grpc_status


def refusal_of(exc: BaseException) -> NegotiatorError:
    """The NegotiatorError for any exception a request ended with (the gateway never sees internals)."""
    if isinstance(exc, NegotiatorError):
        return exc
    if isinstance(exc, StoreContention):
        return Refusal(exc.message, code=exc.code, status_code=503, outcome=Outcome.FAILED,
                       grpc_status=grpc.StatusCode.UNAVAILABLE)
    if isinstance(exc, QuoteError):
        return Refusal(exc.message, code=exc.code, status_code=400, outcome=Outcome.PAYMENT_ERROR,
                       grpc_status=grpc.StatusCode.FAILED_PRECONDITION)
    if isinstance(exc, PaymentError | BalanceError):
        return Refusal(exc.message, code=exc.code, status_code=exc.status_code, outcome=Outcome.PAYMENT_ERROR,
                       grpc_status=grpc.StatusCode.INVALID_ARGUMENT)
    if isinstance(exc, BusError):
        return Refusal("internal error", code=f"bus_{exc.code}", status_code=500, outcome=Outcome.FAILED,
                       grpc_status=grpc.StatusCode.UNAVAILABLE)
    return Refusal("internal error", code="internal", status_code=500, outcome=Outcome.FAILED,
                   grpc_status=grpc.StatusCode.INTERNAL)


class NoFixedPrice(NegotiatorError):
    """/refresh-payment for a session whose price no payment fixed (or a sender with no session): 409."""

    code = "no_fixed_price"
    status_code = 409
