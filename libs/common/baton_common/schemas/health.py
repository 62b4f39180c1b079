"""Service liveness: the heartbeat every service instance writes to NATS KV."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Message
from .storage import KvSpec

__all__ = [
    "HEARTBEATS",
    "SUPERVISION",
    "SUPERVISION_BUCKET",
    "SUPERVISION_TTL",
    "Supervision",
    "HEARTBEAT_BUCKET",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TTL",
    "Check",
    "Heartbeat",
    "State",
    "heartbeat_key",
]

HEARTBEAT_BUCKET = "baton-heartbeats"
"""KV bucket of heartbeats; key ``<service>.<instance>``."""
HEARTBEAT_INTERVAL = 2.0
"""Seconds between two heartbeats of one instance."""
HEARTBEAT_TTL = 10.0
"""Seconds a heartbeat stays in the bucket (the bucket's max age)."""

State = Literal["starting", "ready", "not_ready", "stopping"]


class Check(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The state of one thing a service depends on (NATS, Triton, an Ethereum node...)."""

    ok: bool
    detail: str = ""
    required: bool = False
    """A required check that fails makes the instance not ready."""


class Heartbeat(Message, frozen=True, kw_only=True, tag="heartbeat.v1"):
    service: str
    instance: str
    version: str
    state: State
    started_at: Annotated[float, msgspec.Meta(description="Unix time the process started.")]
    at: Annotated[float, msgspec.Meta(description="Unix time of this heartbeat.")]
    pid: int = 0
    http: str = ""
    """Base URL of the instance's health and metrics server."""
    checks: dict[str, Check] = {}


def heartbeat_key(service: str, instance: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in instance)
    return f"{service}.{safe}"


SUPERVISION_BUCKET = "baton-supervision"
"""KV bucket where `baton up` says how each child process fares; key = service."""

SUPERVISION_TTL = 30.0
"""Seconds a supervision entry stays after its last write."""

SupervisionState = Literal["starting", "running", "restarting", "crash-loop", "stopped"]


class Supervision(Message, frozen=True, kw_only=True, tag="supervision.v1"):
    """What the local supervisor (`baton up`) knows of one child process."""

    service: str
    state: SupervisionState
    pid: int = 0
    restarts: int = 0
    crashes_last_minute: int = 0
    last_exit: int | None = None
    next_restart_in: float = 0.0
    at: float


HEARTBEATS = KvSpec(
    bucket=HEARTBEAT_BUCKET,
    key="<service>.<instance>",
    ttl=HEARTBEAT_TTL,
    history=1,
    writer="every service (the runtime, its own key)",
    readers=("monitor", "baton status"),
    schema="health.Heartbeat",
    purpose=f"liveness every {HEARTBEAT_INTERVAL:g} s; not what a worker serves (see baton-workers)",
)

SUPERVISION = KvSpec(
    bucket=SUPERVISION_BUCKET,
    key="<service>",
    ttl=SUPERVISION_TTL,
    history=1,
    writer="baton up",
    readers=("baton status",),
    schema="health.Supervision",
    purpose="what the local supervisor knows of each child process",
)
