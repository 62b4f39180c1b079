"""The base of every message that crosses NATS, and the registry of them all."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

__all__ = ["Message", "all_messages", "decode", "encode"]

M = TypeVar("M", bound="Message")


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Base for bus messages.

    Every subclass sets an explicit versioned tag (``tag="heartbeat.v1"``).
    New fields always get defaults, a field's type never changes, and
    consumers never forbid unknown fields. Wei amounts are ``int`` and travel
    as JSON, which has no 64-bit limit.
    """


_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


def decode(data: bytes, type_: type[M]) -> M:
    """Decode ``data`` as ``type_`` (a Message class or a union of them)."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder.decode(data)


def all_messages() -> list[type[Message]]:
    """Every Message class with a tag defined in baton_common.schemas, sorted by tag."""
    found: list[type[Message]] = []
    stack = list(Message.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith(__package__ + ".") and msgspec.inspect.type_info(cls).tag is not None:  # type: ignore[attr-defined]
            found.append(cls)
    return sorted(set(found), key=lambda c: str(msgspec.inspect.type_info(c).tag))  # type: ignore[attr-defined]
