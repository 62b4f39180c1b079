"""Adapter: reads every heartbeat from the NATS KV bucket."""

from __future__ import annotations

from nats.js.kv import KeyValue

from baton_common.bus import read_bucket_as
from baton_common.schemas import Heartbeat

__all__ = ["read_heartbeats"]


async def read_heartbeats(kv: KeyValue) -> list[Heartbeat]:
    return await read_bucket_as(kv, Heartbeat)
