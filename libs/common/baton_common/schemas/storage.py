"""Declarations of what lives on the bus: KV buckets, streams, object stores, subjects.

Each bounded-context module declares its own beside its messages;
:mod:`.registry` lists them all, ``docs/architecture.md`` is their map, and
:mod:`baton_common.streams` creates each one from its declaration or refuses
to bind an existing one whose configuration differs. Nothing here imports nats.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["KvSpec", "ObjectStoreSpec", "Spec", "StreamSpec", "SubjectSpec"]

Storage = Literal["file", "memory"]


class _Declared(msgspec.Struct, frozen=True, kw_only=True):
    writer: str
    """The one service (or `baton up`, or the CLI) that writes."""
    readers: tuple[str, ...]
    schema: str
    """The value's type, as ``module.Type`` (a tagged union where several share one place)."""
    purpose: str = ""


class KvSpec(_Declared, frozen=True, kw_only=True):
    bucket: str
    key: str
    """The key pattern, e.g. ``<kind>.<worker_id>``."""
    ttl: float | None = None
    """Seconds an entry outlives its last write (the stream's max age); None keeps entries forever."""
    history: int = 1
    storage: Storage = "file"
    max_value_size: int = -1
    """Largest value in bytes; -1 = up to the server's max payload."""
    max_bytes: int = -1

    @property
    def name(self) -> str:
        return self.bucket

    @property
    def stream(self) -> str:
        return f"KV_{self.bucket}"


class StreamSpec(_Declared, frozen=True, kw_only=True):
    stream: str
    subjects: tuple[str, ...]
    retention: Literal["limits", "interest", "workqueue"] = "limits"
    max_age: float | None = None
    """Seconds a message is kept; None keeps it until another limit drops it."""
    max_msgs_per_subject: int = -1
    max_msg_size: int = -1
    max_bytes: int = -1
    storage: Storage = "file"
    discard: Literal["old", "new"] = "old"
    duplicate_window: float = 120.0
    """Seconds within which a repeated ``Nats-Msg-Id`` is stored once."""

    @property
    def name(self) -> str:
        return self.stream


class ObjectStoreSpec(_Declared, frozen=True, kw_only=True):
    bucket: str
    ttl: float | None = None
    storage: Storage = "file"
    max_bytes: int = -1
    """Total bytes the store may hold; a put beyond it fails (discard new)."""

    @property
    def name(self) -> str:
        return self.bucket

    @property
    def stream(self) -> str:
        return f"OBJ_{self.bucket}"


class SubjectSpec(_Declared, frozen=True, kw_only=True):
    """A core NATS subject (no storage): request/reply or fire-and-forget."""

    subject: str
    """The subject or its pattern, e.g. ``baton.jobs.<kind>.<worker_id>``."""
    pattern: Literal["request", "publish"] = "request"
    reply: str = ""
    """The reply's type, for a request."""


Spec = KvSpec | StreamSpec | ObjectStoreSpec | SubjectSpec
