"""The balance and winning-ticket stores."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from ..pm.ports import BalanceEntry
from ..pm.ticket import SignedTicket
from ..pm.winners import WinnerPending, WinnerRecord, WinnerSettled, settle
from .core import STORE_DEADLINE, _get, _RmwStore

__all__ = ["KvBalanceStore", "KvWinningTickets"]


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
    """One record per ticket hash (hex): created pending, settled by the redeemer, never deleted."""

    durable = True

    def __init__(self, kv: KeyValue, *, deadline: float = STORE_DEADLINE) -> None:
        super().__init__(kv, deadline)

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
        entries = [e for e in [await _get(self._kv, key) for key in keys] if e is not None and e.value]
        entries.sort(key=lambda e: e.revision or 0)
        records = [_decode_winner(e.value) for e in entries if e.value]
        return [r.ticket for r in records if isinstance(r, WinnerPending)]

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
