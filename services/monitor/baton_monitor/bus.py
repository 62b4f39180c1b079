"""What the monitor reads from NATS: heartbeats, worker adverts, the price table, winners, chain data.

Every bucket is bound from its declaration (``Bus.bind``), so the monitor
starting first creates it as its writer would, and a bucket configured
otherwise stops the monitor with a message naming it.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

from baton_common.bus import Bus, read_bucket
from baton_common.pm.ticket import SignedTicket
from baton_common.pm.winners import WinnerPending, WinnerRecord
from baton_common.schemas import Heartbeat, decode
from baton_common.schemas.chain import CHAIN, ChainValue, RoundState, SenderInfo
from baton_common.schemas.health import HEARTBEATS
from baton_common.schemas.payments import WINNERS
from baton_common.schemas.pricing import PRICES, TABLE_KEY, PriceTable
from baton_common.schemas.workers import WORKERS, WorkerAdvert

__all__ = ["BusView"]

T = TypeVar("T", Heartbeat, WorkerAdvert)

_winner = msgspec.json.Decoder(WinnerRecord)
_bare = msgspec.json.Decoder(SignedTicket)


def _decode_winner(value: bytes) -> WinnerRecord | None:
    """A winner record; a bare SignedTicket (as stored before records) reads as pending, as in pm_nats."""
    try:
        return _winner.decode(value)
    except msgspec.ValidationError:
        pass
    try:
        return WinnerPending(_bare.decode(value))
    except msgspec.ValidationError:
        return None


class BusView:
    """The buckets the monitor reads, bound once at start."""

    def __init__(self, heartbeats: KeyValue, workers: KeyValue, pricing: KeyValue, winners: KeyValue,
                 chain: KeyValue) -> None:
        self._heartbeats, self._workers, self._pricing = heartbeats, workers, pricing
        self._winners, self._chain = winners, chain
        self._seen: dict[int, set[str]] = {}

    async def _read(self, kv: KeyValue) -> dict[str, bytes]:
        """Every live key and value, as :func:`read_bucket`, and the keys the last read had that this
        listing missed, got one by one: listing a bucket (nats-py's ``keys()``) can miss a key that is
        being rewritten at that moment, which for heartbeats every 2 s would flap a service down.
        A key deleted or expired meanwhile stays gone."""
        values = await read_bucket(kv)
        for key in self._seen.get(id(kv), set()) - values.keys():
            try:
                entry = await kv.get(key)
            except nats.js.errors.NotFoundError:
                continue
            if entry.value:
                values[key] = entry.value
        self._seen[id(kv)] = set(values)
        return values

    async def _read_as(self, kv: KeyValue, type_: type[T]) -> list[T]:
        out = []
        for value in (await self._read(kv)).values():
            try:
                out.append(decode(value, type_))
            except msgspec.ValidationError:
                continue
        return out

    @classmethod
    async def bind(cls, bus: Bus) -> BusView:
        return cls(await bus.bind(HEARTBEATS), await bus.bind(WORKERS), await bus.bind(PRICES),
                   await bus.bind(WINNERS), await bus.bind(CHAIN))

    async def heartbeats(self) -> list[Heartbeat]:
        return await self._read_as(self._heartbeats, Heartbeat)

    async def adverts(self) -> list[WorkerAdvert]:
        return await self._read_as(self._workers, WorkerAdvert)

    async def price_table(self) -> PriceTable | None:
        value = (await read_bucket(self._pricing)).get(TABLE_KEY)
        if not value:
            return None
        try:
            return decode(value, PriceTable)
        except msgspec.ValidationError:
            return None

    async def winners(self) -> dict[str, WinnerRecord]:
        out = {}
        for key, value in (await read_bucket(self._winners)).items():
            record = _decode_winner(value)
            if record is not None:
                out[key] = record
        return out

    async def chain(self) -> tuple[RoundState | None, list[SenderInfo]]:
        values = (await read_bucket(self._chain)).items()
        round_state, senders = None, []
        for key, value in values:
            try:
                item = decode(value, ChainValue)
            except msgspec.ValidationError:
                continue
            if key == "round" and isinstance(item, RoundState):
                round_state = item
            elif key.startswith("sender.") and isinstance(item, SenderInfo):
                senders.append(item)
        return round_state, senders
