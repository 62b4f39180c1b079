"""The error classes every service shares.

Each error has a machine-readable ``code`` and the HTTP status it maps to, so
adapters translate them in one place and nobody matches on message text.
Setup errors (bad configuration) are kept apart from the errors that flow
back to a caller over the bus.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BatonError",
    "BusError",
    "ConfigError",
    "DecodeError",
    "NoResponders",
    "NotConnected",
    "RemoteError",
    "RequestTimeout",
    "ServiceError",
]


class BatonError(Exception):
    """Base of every error Baton raises on purpose."""

    code: str = "internal"
    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BatonError):
    """A setting is unknown or has a bad value: the service must not start."""

    code = "config"
    status_code = 500


class ServiceError(BatonError):
    """An error a bus handler raises on purpose; it reaches the caller as a RemoteError.

    Subclasses set ``code`` and ``status_code``; the message is sent to the caller,
    so it must never hold a secret.
    """

    code = "service_error"
    status_code = 500


class BadRequest(ServiceError):
    code = "bad_request"
    status_code = 400


class BusError(BatonError):
    """Base of the errors a bus call raises."""

    code = "bus"
    status_code = 503


class NoResponders(BusError):
    """Nobody is subscribed to the subject: the service that answers it is down."""

    code = "no_responders"
    status_code = 503

    def __init__(self, subject: str) -> None:
        super().__init__(f"no service answers {subject!r}")
        self.subject = subject


class RequestTimeout(BusError):
    code = "timeout"
    status_code = 504

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no reply on {subject!r} within {timeout:g}s")
        self.subject = subject
        self.timeout = timeout


class NotConnected(BusError):
    code = "not_connected"
    status_code = 503


class DecodeError(BusError):
    """A message on the bus did not match its schema."""

    code = "decode"
    status_code = 502


class RemoteError(BusError):
    """The responder answered with an error (Nats-Service-Error headers)."""

    def __init__(self, subject: str, status: int, code: str, description: str) -> None:
        super().__init__(f"{subject}: {description}")
        self.subject = subject
        self.status_code = status
        self.code = code
        self.description = description

