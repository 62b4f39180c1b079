"""The redemption journal in ``baton-chain-txs``: each transaction hash written before it is sent.

Only the sender-lease holder writes it, so a plain get and put suffice. After
a kill -9 between send and receipt, the redeemer asks the node for the
journaled transactions' receipts first: a successful one settles the ticket
redeemed without depending on how far back the node serves event logs.
"""

from __future__ import annotations

import time

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from baton_common.schemas import decode, encode
from baton_common.schemas.chain import SentTx

__all__ = ["TxJournal", "redeem_key"]


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
        """Add ``tx_hash`` to ``key``'s entry; the caller sends the transaction only after this returns."""
        current = await self.get(key)
        hashes = [*(current.tx_hashes if current else []), "0x" + tx_hash.hex()]
        await self.kv.put(key, encode(SentTx(what=what, account=self.account.lower(), nonce=nonce,
                                             tx_hashes=hashes, sent_at=time.time())))

    async def hashes(self, key: str) -> list[bytes]:
        entry = await self.get(key)
        return [bytes.fromhex(h.removeprefix("0x")) for h in entry.tx_hashes] if entry else []

    async def forget(self, key: str) -> None:
        try:
            await self.kv.delete(key)
        except KeyNotFoundError:
            pass
