"""Job results on their way out: the runner's JSON with its media URLs, and the results kept in memory for
the GETs that follow their answer (``/stream/...``)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["RECENT_BYTES", "RECENT_SECONDS", "RESPONSE_JSON", "Recent", "replace_urls"]

RECENT_BYTES = 64 * 1024**2
"""Results held in memory for the GETs that follow their answer (each replica); older ones come from the store."""
RECENT_SECONDS = 30.0


class Recent:
    """The results kept last, in memory, for the gateway's GET that follows its answer (by path).

    Bounded by bytes and age; a miss (another replica, an evicted or older result) reads ``baton-bodies``.
    """

    def __init__(self, max_bytes: int = RECENT_BYTES, max_age: float = RECENT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes, self.max_age, self.clock = max_bytes, max_age, clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.size = 0

    def add(self, path: str, data: bytes) -> None:
        self._drop(path)
        if len(data) > self.max_bytes:
            return
        self._items[path] = (self.clock(), data)
        self.size += len(data)
        self._expire()

    def get(self, path: str) -> bytes | None:
        self._expire()
        item = self._items.get(path)
        return None if item is None else item[1]

    def _drop(self, path: str) -> None:
        item = self._items.pop(path, None)
        if item is not None:
            self.size -= len(item[1])

    def _expire(self) -> None:
        oldest = self.clock() - self.max_age
        while self._items:
            path, (at, _) = next(iter(self._items.items()))
            if at >= oldest and self.size <= self.max_bytes:
                return
            self._drop(path)


RESPONSE_JSON = "response.json"
"""The output that carries the runner's JSON when it is too big for ``JobResult.data``."""


def replace_urls(doc: Any, urls: dict[str, str]) -> Any:
    """``doc`` with every ``url`` value that names a key of ``urls`` replaced by its URL."""
    if isinstance(doc, dict):
        return {k: (urls.get(v, v) if k == "url" and isinstance(v, str) else replace_urls(v, urls))
                for k, v in doc.items()}
    if isinstance(doc, list):
        return [replace_urls(v, urls) for v in doc]
    return doc
