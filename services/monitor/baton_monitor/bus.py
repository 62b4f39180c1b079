"""Adapter: reads every heartbeat from the NATS KV bucket."""

from __future__ import annotations

import msgspec
from nats.js.kv import KeyValue

from baton_common.bus import read_bucket
from baton_common.schemas import Heartbeat, decode

__all__ = ["read_heartbeats"]


async def read_heartbeats(kv: KeyValue) -> list[Heartbeat]:
    out = []
    for value in (await read_bucket(kv)).values():
        try:
            out.append(decode(value, Heartbeat))
        except msgspec.ValidationError:
            continue  # written by a newer, incompatible version: not ours to judge
    return out
