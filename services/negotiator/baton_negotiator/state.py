"""Cached shared state: KV watches of the worker adverts, the price table and the chain view.

GetOrchestrator answers from these copies; nothing on its hot path waits on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Generic, TypeVar

import grpc
import msgspec
from nats.js.kv import KeyValue

from baton_common.schemas import decode
from baton_common.schemas.pricing import TABLE_KEY, TABLE_MAX_AGE, GatewayPrice, PriceTable, WeiPrice
from baton_common.schemas.workers import WorkerAdvert

from .domain import WorkerPool
from .errors import NegotiatorError

__all__ = ["FixedPrices", "KvMirror", "TablePrices", "mirror_workers", "parse_price"]

log = logging.getLogger("baton.negotiator")
T = TypeVar("T")
_DELETES = ("DEL", "PURGE")


class KvMirror(Generic[T]):
    """A live copy of one KV bucket: ``values`` by key, kept by an ordered watch (which resumes itself)."""

    def __init__(self, kv: KeyValue, type_: type[T], *, on_change: Callable[[str, T | None], None] | None = None) -> None:
        self._kv = kv
        self._type = type_
        self._on_change = on_change
        self.values: dict[str, T] = {}
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    async def start(self, timeout: float = 5.0) -> None:
        watcher = await self._kv.watchall()
        self._task = asyncio.create_task(self._run(watcher), name=f"watch-{self._kv._name}")
        await asyncio.wait_for(self._loaded.wait(), timeout)

    async def _run(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:
                    self._loaded.set()
                    continue
                value: T | None = None
                if entry.operation not in _DELETES and entry.value:
                    try:
                        value = decode(entry.value, self._type)  # type: ignore[arg-type]
                    except msgspec.ValidationError:
                        log.warning("ignored a value that does not decode", extra={"key": entry.key})
                if value is None:
                    self.values.pop(entry.key, None)
                else:
                    self.values[entry.key] = value
                if self._on_change is not None:
                    self._on_change(entry.key, value)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def mirror_workers(kv: KeyValue, pool: WorkerPool) -> KvMirror[WorkerAdvert]:
    return KvMirror(kv, WorkerAdvert, on_change=pool.put)


class PricesUnavailable(NegotiatorError):
    code = "prices_unavailable"
    status_code = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


def parse_price(price_per_unit: str, pixels_per_unit: int) -> Fraction:
    """-pricePerUnit (wei, or eth) / -pixelsPerUnit as wei per unit."""
    text = price_per_unit.strip().lower()
    scale = 1
    if text.endswith("eth"):
        text, scale = text[:-3], 10**18
    elif text.endswith("wei"):
        text = text[:-3]
    return Fraction(text) * scale / pixels_per_unit


class FixedPrices:
    """The price table from this negotiator's own settings (until the pricing service runs)."""

    def __init__(self, base: Fraction, *, auto_adjust: bool = True) -> None:
        self._base = WeiPrice(num=base.numerator, den=base.denominator)
        self._auto = auto_adjust

    def table(self) -> PriceTable:
        return PriceTable(base=self._base, auto_adjust=self._auto, at=time.time(),
                          gateways={"default": GatewayPrice()})


class TablePrices:
    """The pricing service's table from the ``baton-pricing`` watch; refused when older than TABLE_MAX_AGE."""

    def __init__(self, mirror: KvMirror[PriceTable], *, clock: Callable[[], float] = time.time) -> None:
        self._mirror = mirror
        self._clock = clock

    def table(self) -> PriceTable:
        table = self._mirror.values.get(TABLE_KEY)
        if table is None:
            raise PricesUnavailable("no price table published yet")
        if self._clock() - table.at > TABLE_MAX_AGE:
            raise PricesUnavailable(f"the price table is {self._clock() - table.at:.0f} s old")
        return table
