"""Live model changes: ``baton models load|unload`` asks one inference worker to change what it serves.

The CLI sends a request on the worker's own ``baton.models.<worker_id>``; the
worker loads (or unloads) through Triton, answers when that took effect, and
appends an ``AuditEvent`` (``models.load`` / ``models.unload``) to
``BATON_AUDIT``. The advert follows: a loaded model is advertised once warm,
an unloaded one is withdrawn at once.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .base import Message
from .storage import SubjectSpec

__all__ = ["MODEL_CONTROL", "ModelControl", "ModelControlReply", "ModelLoad", "ModelUnload", "models_subject"]


def models_subject(worker_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in worker_id)
    return f"baton.models.{safe}"


class ModelLoad(Message, frozen=True, kw_only=True, tag="model-load.v1"):
    pipeline: str
    model_id: str
    capacity: Annotated[int, msgspec.Meta(ge=1)] = 1
    actor: str = ""
    """Who asked (``alice@host``), for the audit log."""
    reason: str = ""


class ModelUnload(Message, frozen=True, kw_only=True, tag="model-unload.v1"):
    pipeline: str
    model_id: str
    actor: str = ""
    reason: str = ""


ModelControl = ModelLoad | ModelUnload


class ModelControlReply(Message, frozen=True, kw_only=True, tag="model-control-reply.v1"):
    ok: bool
    state: str = ""
    """The model's state after the change: ready, cold, slow, failed..."""
    message: str = ""
    load_seconds: float = 0.0
    memory_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0


MODEL_CONTROL = SubjectSpec(
    subject="baton.models.<worker_id>",
    pattern="request",
    writer="baton CLI (baton models load|unload)",
    readers=("inference (that worker)",),
    schema="models.ModelLoad | models.ModelUnload",
    reply="models.ModelControlReply",
    purpose="change a worker's model set live; the worker audits each change to BATON_AUDIT",
)
