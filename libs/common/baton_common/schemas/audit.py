"""The audit log: one JetStream stream of every operator action.

The service that applies an action (pricing for prices, inference for model
loads and unloads) appends one :class:`AuditEvent` after it took effect, on
``baton.audit.<area>``, with ``Nats-Msg-Id`` = ``event_id`` so a retried
publish is stored once. The CLI passes who and why along with the request.
Nobody edits or deletes an event; the stream keeps a year.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .base import Message
from .storage import StreamSpec

__all__ = ["AUDIT", "AUDIT_RETENTION", "AUDIT_STREAM", "AuditArea", "AuditEvent", "audit_subject"]

AUDIT_STREAM = "BATON_AUDIT"
AUDIT_RETENTION = 366 * 24 * 3600.0

AuditArea = Literal["prices", "models", "keys", "config"]


def audit_subject(area: AuditArea) -> str:
    return f"baton.audit.{area}"


class AuditEvent(Message, frozen=True, kw_only=True, tag="audit.v1"):
    event_id: str
    """Unique per action (a UUID); the publish's Nats-Msg-Id."""
    at: Annotated[float, msgspec.Meta(description="Unix time the action took effect.")]
    actor: str
    """Who: the operator as the CLI or API authenticated them (``alice@host``), or ``service:<name>`` for automatic actions."""
    service: str
    """Which service applied it."""
    area: AuditArea
    action: str
    """What, as ``<area>.<verb>``: ``prices.set``, ``models.load``, ``models.unload``..."""
    target: str = ""
    """What it applied to: a gateway address, ``<pipeline>/<model_id>`` on a worker..."""
    old: Any = None
    """The value before (JSON), None when there was none."""
    new: Any = None
    reason: str = ""
    ok: bool = True
    """False when the action was attempted and failed; ``error`` says why."""
    error: str = ""


AUDIT = StreamSpec(
    stream=AUDIT_STREAM,
    subjects=("baton.audit.>",),
    retention="limits",
    max_age=AUDIT_RETENTION,
    storage="file",
    discard="old",
    duplicate_window=120.0,
    writer="pricing (prices), inference (model loads and unloads)",
    readers=("monitor", "baton CLI"),
    schema="audit.AuditEvent",
    purpose="every operator action: who, when, what, old and new value, reason; kept a year",
)
