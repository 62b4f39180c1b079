"""The balance and winning-ticket stores."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from ..pm.ports import BalanceEntry
from ..pm.ticket import SignedTicket
from ..pm.winners import WinnerPending, WinnerRecord, WinnerSettled, settle
from .core import STORE_DEADLINE, _get, _RmwStore

__all__ = ["KvBalanceStore", "KvWinningTickets"]

log = logging.getLogger("baton.pm.winners")


class KvBalanceStore(_RmwStore):
    """Balances by key; the bucket's TTL (``BALANCE_IDLE_TTL``) is their idle expiry, on the server's clock."""

    expires_idle = True
    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)
        self._decoder = msgspec.json.Decoder(BalanceEntry)

    async def get(self, key: str) -> BalanceEntry | None:
        entry = await _get(self._kv, key)
        return self._decoder.decode(entry.value) if entry and entry.value else None

    async def update(
        self, key: str, change: Callable[[BalanceEntry | None], BalanceEntry | None]
    ) -> BalanceEntry | None:
        return await self._rmw(key, self._decoder.decode, msgspec.json.encode, change, f"balance {key}")


_record_union_decoder = msgspec.json.Decoder(WinnerRecord)
_legacy_ticket_decoder = msgspec.json.Decoder(SignedTicket)


def _decode_winner(value: bytes) -> WinnerRecord:
    """A winner record; a bare SignedTicket (as stored before records) reads as pending."""
    try:
        return _record_union_decoder.decode(value)
    except msgspec.ValidationError:
        return WinnerPending(_legacy_ticket_decoder.decode(value))


class KvWinningTickets(_RmwStore):
    """One record per ticket hash (hex): created pending, settled by the redeemer, never deleted.

    A settled record never changes, so ``pending`` reads each one once per store object and skips it
    afterwards. A record that does not decode (a newer writer's tag, a truncated value) is skipped and
    counted in ``bad_records`` by key; its key is logged once, never its value.
    """

    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)
        self.bad_records: dict[str, int] = {}
        """Keys whose record did not decode, with the number of reads that skipped it."""
        self._settled: set[str] = set()

    async def store(self, ticket: SignedTicket) -> bool:
        key = ticket.ticket_hash.hex()
        created: list[bool] = []

        def create(current: WinnerRecord | None) -> WinnerRecord | None:
            created.append(current is None)
            return WinnerPending(ticket) if current is None else None

        await self._rmw(key, _decode_winner, msgspec.json.encode, create, f"winning ticket {key}")
        # The last decision stands: a create whose ack was lost reads back as ours, with no new decision.
        return created[-1]

    async def pending(self) -> list[SignedTicket]:
        """Every pending ticket, in the order they were stored."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        fetched = [await _get(self._kv, key) for key in keys if key not in self._settled]
        entries = sorted((e for e in fetched if e is not None and e.value), key=lambda e: e.revision or 0)
        out: list[SignedTicket] = []
        for entry in entries:
            try:
                record = _decode_winner(entry.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.bad_records[entry.key] = self.bad_records.get(entry.key, 0) + 1
                if self.bad_records[entry.key] == 1:
                    log.error("winning ticket record does not decode; skipped",
                              extra={"key": entry.key, "error": type(exc).__name__})
                continue
            if isinstance(record, WinnerPending):
                out.append(record.ticket)
            else:
                self._settled.add(entry.key)
        return out

    async def settle(self, ticket_hash: bytes, result: WinnerSettled) -> WinnerRecord:
        key = ticket_hash.hex()

        def apply(current: WinnerRecord | None) -> WinnerRecord | None:
            if current is None:
                raise KeyError(f"no winning ticket {key}")
            new = settle(current, result)
            return None if new is current else new

        record = await self._rmw(key, _decode_winner, msgspec.json.encode, apply, f"winning ticket {key}")
        assert record is not None
        return record

    async def record(self, ticket_hash: bytes) -> WinnerRecord | None:
        entry = await _get(self._kv, ticket_hash.hex())
        return _decode_winner(entry.value) if entry and entry.value else None
