"""Create each declared bucket, stream and object store, or check the one that exists.

The first service to start creates a store from its declaration
(:mod:`baton_common.schemas.registry`); every later bind reads the existing
configuration and raises :class:`StoreMismatch`, a setup error that stops the
service, when a setting the contract fixes differs. Nothing is updated in
place: changing a bucket's TTL or history under running services is an
operator's decision (delete it, or migrate), not a start-up side effect.
"""

from __future__ import annotations

from collections.abc import Iterable

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from .errors import ConfigError
from .schemas.storage import KvSpec, ObjectStoreSpec, StreamSpec

__all__ = ["StoreMismatch", "differences", "ensure_all", "ensure_kv", "ensure_object_store", "ensure_stream"]

_STORAGE = {"file": StorageType.FILE, "memory": StorageType.MEMORY}
_RETENTION = {"limits": RetentionPolicy.LIMITS, "interest": RetentionPolicy.INTEREST, "workqueue": RetentionPolicy.WORK_QUEUE}
_DISCARD = {"old": DiscardPolicy.OLD, "new": DiscardPolicy.NEW}


class StoreMismatch(ConfigError):
    """An existing bucket or stream is configured otherwise than its declaration."""

    code = "store_mismatch"


def _seconds(value: float | None) -> float:
    return round(value or 0.0, 3)  # 0 = unlimited, as the server reports it


def _limit(value: int | None) -> int:
    return -1 if value in (None, 0, -1) else int(value)


def expected(spec: KvSpec | StreamSpec | ObjectStoreSpec) -> dict[str, object]:
    """The stream settings ``spec`` fixes, as the server reports them."""
    if isinstance(spec, KvSpec):
        return {
            "max_age": _seconds(spec.ttl),
            "history": spec.history,
            "storage": _STORAGE[spec.storage],
            "max_value_size": _limit(spec.max_value_size),
            "max_bytes": _limit(spec.max_bytes),
        }
    if isinstance(spec, ObjectStoreSpec):
        return {"max_age": _seconds(spec.ttl), "storage": _STORAGE[spec.storage], "max_bytes": _limit(spec.max_bytes)}
    return {
        "subjects": sorted(spec.subjects),
        "retention": _RETENTION[spec.retention],
        "max_age": _seconds(spec.max_age),
        "max_msgs_per_subject": _limit(spec.max_msgs_per_subject),
        "max_msg_size": _limit(spec.max_msg_size),
        "max_bytes": _limit(spec.max_bytes),
        "storage": _STORAGE[spec.storage],
        "discard": _DISCARD[spec.discard],
        "duplicate_window": _seconds(spec.duplicate_window),
    }


def actual(spec: KvSpec | StreamSpec | ObjectStoreSpec, config: StreamConfig) -> dict[str, object]:
    """The same settings read from an existing stream's ``config``."""
    found: dict[str, object] = {
        "max_age": _seconds(config.max_age),
        "storage": config.storage,
        "max_bytes": _limit(config.max_bytes),
    }
    if isinstance(spec, KvSpec):
        found |= {"history": config.max_msgs_per_subject, "max_value_size": _limit(config.max_msg_size)}
    elif isinstance(spec, StreamSpec):
        found |= {
            "subjects": sorted(config.subjects or []),
            "retention": config.retention,
            "max_msgs_per_subject": _limit(config.max_msgs_per_subject),
            "max_msg_size": _limit(config.max_msg_size),
            "discard": config.discard,
            "duplicate_window": _seconds(config.duplicate_window),
        }
    return found


def differences(spec: KvSpec | StreamSpec | ObjectStoreSpec, config: StreamConfig) -> list[str]:
    """``setting: declared X, found Y`` for each setting that differs."""
    want, have = expected(spec), actual(spec, config)
    return [f"{key}: declared {_show(want[key])}, found {_show(have.get(key))}" for key in want if want[key] != have.get(key)]


def _show(value: object) -> str:
    return str(getattr(value, "value", value))


async def _verify(js: JetStreamContext, spec: KvSpec | StreamSpec | ObjectStoreSpec) -> None:
    info = await js.stream_info(spec.stream)
    wrong = differences(spec, info.config)
    if wrong:
        kind, command = {
            KvSpec: ("KV bucket", "kv"), StreamSpec: ("stream", "stream"), ObjectStoreSpec: ("object store", "object")
        }[type(spec)]
        raise StoreMismatch(
            f"{kind} {spec.name!r} exists with another configuration ({'; '.join(wrong)}); refusing to start. "
            f"Delete it (`nats {command} rm {spec.name}`) if its contents may go, or migrate it, then start again."
        )


async def ensure_kv(js: JetStreamContext, spec: KvSpec, *, description: str = "") -> KeyValue:
    """Bind ``spec``'s bucket, creating it if absent; :class:`StoreMismatch` if it is configured otherwise."""
    try:
        kv = await js.key_value(spec.bucket)
    except nats.js.errors.BucketNotFoundError:
        try:
            return await js.create_key_value(
                KeyValueConfig(
                    bucket=spec.bucket,
                    description=description or spec.purpose or None,
                    ttl=spec.ttl,
                    history=spec.history,
                    storage=_STORAGE[spec.storage],
                    max_value_size=spec.max_value_size,
                    max_bytes=spec.max_bytes,
                )
            )
        except nats.js.errors.BadRequestError:  # created meanwhile by another instance: check it below
            kv = await js.key_value(spec.bucket)
    await _verify(js, spec)
    return kv


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Create ``spec``'s stream if absent; :class:`StoreMismatch` if it exists configured otherwise."""
    try:
        await js.stream_info(spec.stream)
    except nats.js.errors.NotFoundError:
        config = StreamConfig(
            name=spec.stream,
            description=spec.purpose or None,
            subjects=list(spec.subjects),
            retention=_RETENTION[spec.retention],
            max_age=spec.max_age,
            max_msgs_per_subject=spec.max_msgs_per_subject,
            max_msg_size=spec.max_msg_size,
            max_bytes=spec.max_bytes,
            storage=_STORAGE[spec.storage],
            discard=_DISCARD[spec.discard],
            duplicate_window=spec.duplicate_window,
        )
        try:
            await js.add_stream(config)
            return
        except nats.js.errors.BadRequestError:  # created meanwhile: check it below
            pass
    await _verify(js, spec)


async def ensure_object_store(js: JetStreamContext, spec: ObjectStoreSpec) -> ObjectStore:
    """Bind ``spec``'s object store, creating it if absent; :class:`StoreMismatch` if configured otherwise."""
    try:
        store = await js.object_store(spec.bucket)
    except nats.js.errors.BucketNotFoundError:
        try:
            return await js.create_object_store(
                spec.bucket,
                ObjectStoreConfig(
                    description=spec.purpose or None,
                    ttl=spec.ttl,
                    storage=_STORAGE[spec.storage],
                    max_bytes=spec.max_bytes,
                ),
            )
        except nats.js.errors.BadRequestError:
            store = await js.object_store(spec.bucket)
    await _verify(js, spec)
    return store


async def ensure_all(js: JetStreamContext, specs: Iterable[KvSpec | StreamSpec | ObjectStoreSpec]) -> None:
    """Create or check each of ``specs``; the first mismatch raises."""
    for spec in specs:
        if isinstance(spec, KvSpec):
            await ensure_kv(js, spec)
        elif isinstance(spec, StreamSpec):
            await ensure_stream(js, spec)
        else:
            await ensure_object_store(js, spec)
