"""What the transcode worker needs from outside: the encoder process and the body store."""

from __future__ import annotations

from typing import Protocol

from baton_common.schemas.jobs import BodyRef

from .ffmpeg import Completed

__all__ = ["Bodies", "Encoder"]


class Encoder(Protocol):
    async def run(self, argv: list[str], timeout: float) -> Completed:
        """Run one ffmpeg command; a run past ``timeout`` is killed and comes back with ``timed_out``."""
        ...


class Bodies(Protocol):
    async def get(self, ref: BodyRef) -> bytes:
        """The body ``ref`` names, checked against its size and digest; :class:`~.errors.BodyMissing` otherwise."""
        ...

    async def put(self, name: str, data: bytes, content_type: str) -> BodyRef:
        ...
