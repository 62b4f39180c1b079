"""The redemption journal in ``baton-chain-txs``: each transaction hash written before it is sent.

Only the sender-lease holder writes it; writes are compare-and-set all the
same, so a hash written by an instance that has just lost the lease is kept.
After a kill -9 between send and receipt, the redeemer asks the node for the
journaled transactions' receipts first: a successful one settles the ticket
redeemed without depending on how far back the node serves event logs.
"""

from __future__ import annotations

import time

from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from baton_common.schemas import decode, encode
from baton_common.schemas.chain import SentTx

from .errors import ChainError

__all__ = ["JournalConflict", "TxJournal", "redeem_key"]


class JournalConflict(ChainError):
    """The journal entry changed under every compare-and-set: nothing is sent."""

    code = "journal_conflict"


def redeem_key(ticket_hash: bytes) -> str:
    return f"redeem.{ticket_hash.hex()}"


class TxJournal:
    def __init__(self, kv: KeyValue, account: str) -> None:
        self.kv = kv
        self.account = account

    async def get(self, key: str) -> SentTx | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        return decode(entry.value, SentTx) if entry.value else None

    async def record(self, key: str, what: str, nonce: int, tx_hash: bytes) -> None:
        """Add ``tx_hash`` to ``key``'s entry; the caller sends the transaction only after this returns.

        Compare-and-set, so a hash another writer added meanwhile is never lost."""
        for _ in range(10):
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                entry = None
            current = decode(entry.value, SentTx) if entry is not None and entry.value else None
            hashes = [*(current.tx_hashes if current else []), "0x" + tx_hash.hex()]
            value = encode(SentTx(what=what, account=self.account.lower(), nonce=nonce, tx_hashes=hashes,
                                  sent_at=time.time()))
            try:
                if entry is None:
                    await self.kv.create(key, value)
                else:
                    await self.kv.update(key, value, last=entry.revision)
                return
            except (KeyWrongLastSequenceError, APIError):  # written meanwhile: read it again
                continue
        raise JournalConflict(f"journal entry {key} kept changing under us")

    async def hashes(self, key: str) -> list[bytes]:
        entry = await self.get(key)
        return [bytes.fromhex(h.removeprefix("0x")) for h in entry.tx_hashes] if entry else []

    async def forget(self, key: str) -> None:
        try:
            await self.kv.delete(key)
        except KeyNotFoundError:
            pass
