"""Adapter: reads every heartbeat from the NATS KV bucket."""

from __future__ import annotations

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

from baton_common.schemas import Heartbeat, decode

__all__ = ["read_heartbeats"]


async def read_heartbeats(kv: KeyValue) -> list[Heartbeat]:
    try:
        keys = await kv.keys()
    except nats.js.errors.NoKeysError:
        return []
    out = []
    for key in keys:
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            continue  # expired or deleted between keys() and get()
        if entry.value:
            try:
                out.append(decode(entry.value, Heartbeat))
            except msgspec.ValidationError:
                continue  # written by a newer, incompatible version: not ours to judge
    return out
