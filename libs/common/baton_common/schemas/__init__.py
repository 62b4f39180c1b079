"""Message schemas: msgspec Structs that cross NATS, one module per bounded context.

Each module keeps its subject names and its bucket, stream and object-store
declarations (:mod:`.storage`) beside its messages; :mod:`.registry` lists
them all and ``docs/architecture.md`` is their map. Import the context modules
by name (``from baton_common.schemas.jobs import JobRequest``).
"""

from . import ai, audit, chain, jobs, models, pricing, workers
from .base import Message, all_messages, decode, encode
from .health import (
    HEARTBEAT_BUCKET,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TTL,
    SUPERVISION_BUCKET,
    Check,
    Heartbeat,
    Supervision,
    heartbeat_key,
)

__all__ = [
    "ai",
    "audit",
    "chain",
    "jobs",
    "models",
    "pricing",
    "workers",
    "HEARTBEAT_BUCKET",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TTL",
    "SUPERVISION_BUCKET",
    "Check",
    "Heartbeat",
    "Message",
    "Supervision",
    "all_messages",
    "decode",
    "encode",
    "heartbeat_key",
]
