"""Message schemas: msgspec Structs that cross NATS, one module per bounded context.

Each module keeps its subject names and KV bucket names beside its messages.
"""

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
