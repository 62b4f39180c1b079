"""The sender lease in NATS KV: only the instance holding it sends transactions.

The holder is named by instance id, host and a random id of the process
(``chain-a@host#1f2e3d4c``), so replicas that share an instance id (compose's
``--scale chain=2``) never take the lease from each other. A process restarted
under the same instance id on the same host (a container restarted by its
supervisor: the old process is gone) takes its own lease back at once.
The holder renews by compare-and-set every third of the TTL. It counts itself
the holder only until its last confirmed renewal plus the TTL minus one renewal
period, so it stops sending before the bucket could drop the key and a standby
could take it over. A standby retries ``create``, which succeeds once the key
is gone (the holder stopped renewing, or released it at shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from baton_common.schemas import decode, encode
from baton_common.schemas.chain import ChainLease

__all__ = ["LEASE_KEY", "SenderLease"]

log = logging.getLogger("baton.chain.lease")
LEASE_KEY = "sender"


class SenderLease:
    def __init__(self, kv: KeyValue, holder: str, account: str, ttl: float, *, host: str = "") -> None:
        self.kv = kv
        self.home = f"{holder}@{host or socket.gethostname()}"
        """What a restart of this process shares with it: instance id and host."""
        self.holder = f"{self.home}#{secrets.token_hex(4)}"
        self.account = account
        self.ttl = ttl
        self.period = ttl / 3
        self._revision: int | None = None
        self._valid_until = 0.0
        self.acquired = asyncio.Event()

    def held(self) -> bool:
        return self._revision is not None and time.monotonic() < self._valid_until

    async def holder_now(self) -> str | None:
        try:
            entry = await self.kv.get(LEASE_KEY)
        except KeyNotFoundError:
            return None
        return decode(entry.value or b"", ChainLease).holder

    async def try_once(self) -> bool:
        """Acquire or renew once; True if this instance holds the lease afterwards."""
        started = time.monotonic()
        value = encode(ChainLease(holder=self.holder, account=self.account, renewed_at=time.time()))
        try:
            if self._revision is None:
                try:
                    self._revision = await self.kv.create(LEASE_KEY, value)
                except (KeyWrongLastSequenceError, nats.js.errors.APIError):
                    # Our own lease from before a restart (same instance id and host): take it back.
                    entry = await self.kv.get(LEASE_KEY)
                    if decode(entry.value or b"", ChainLease).holder.rpartition("#")[0] != self.home:
                        raise
                    self._revision = await self.kv.update(LEASE_KEY, value, last=entry.revision)
                log.info("sender lease acquired", extra={"holder": self.holder})
            else:
                self._revision = await self.kv.update(LEASE_KEY, value, last=self._revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError, nats.js.errors.APIError) as exc:
            if self._revision is not None:
                log.warning("sender lease lost", extra={"holder": self.holder, "error": type(exc).__name__})
            self._revision = None
            self.acquired.clear()
            return False
        except (TimeoutError, nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.NoRespondersError):
            return self.held()  # keep what we had until it runs out
        self._valid_until = started + self.ttl - self.period
        self.acquired.set()
        return True

    async def run(self) -> None:
        while True:
            await self.try_once()
            await asyncio.sleep(self.period if self._revision is not None else self.period / 2)

    async def release(self) -> None:
        if self._revision is not None:
            try:
                await self.kv.delete(LEASE_KEY, last=self._revision)
            except Exception:  # lapses by TTL anyway
                pass
            self._revision = None
            self.acquired.clear()
