"""NATS adapters of the transcode worker: bodies in ``baton-bodies``, the advert in ``baton-workers``.

The advert is put at start, every ``ADVERT_INTERVAL`` seconds and at once on
every change of the slots in use. Withdrawal is explicit: once the job
subscription is drained (the runtime's shutdown step 4) the key is deleted
and nothing more is put, and :meth:`Advertiser.withdraw` deletes it again in
the service's ``stop``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.subscription import Subscription
from nats.js.api import ObjectMeta, ObjectMetaOptions
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from baton_common.schemas import encode
from baton_common.schemas.jobs import BodyRef, job_subject
from baton_common.schemas.transcode import TRANSCODE_PIPELINE
from baton_common.schemas.workers import ADVERT_INTERVAL, Gpu, Hardware, ModelState, WorkerAdvert, advert_key

from .domain import Capabilities
from .errors import BodyMissing

__all__ = ["Advertiser", "ObjectBodies"]

log = logging.getLogger("baton.transcode.bus")
CHUNK_SIZE = 512 * 1024
"""Chunk size of the renditions put: 4x fewer acknowledged publishes than nats-py's 128 KiB default, well below
NATS's 1 MB max payload (readers read any chunk size: it is in the object's meta)."""


class ObjectBodies:
    """Segment and rendition bodies in the ``baton-bodies`` object store, checked by size and SHA-256."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def get(self, ref: BodyRef) -> bytes:
        try:
            # Into memory (a writeinto= target costs a thread hop per chunk); nats-py checks the stored digest.
            data = (await self.store.get(ref.name)).data or b""
        except nats.js.errors.NotFoundError:
            raise BodyMissing(f"body {ref.name!r} is not in the object store (expired or deleted)") from None
        except nats.js.errors.DigestMismatchError:
            raise BodyMissing(f"body {ref.name!r} does not match its stored digest") from None
        if ref.size and len(data) != ref.size:
            raise BodyMissing(f"body {ref.name!r} has {len(data)} bytes, its reference says {ref.size}")
        if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256.lower():
            raise BodyMissing(f"body {ref.name!r} does not match the sha256 of its reference")
        return data

    async def put(self, name: str, data: bytes, content_type: str) -> BodyRef:
        await self.store.put(name, data, meta=ObjectMeta(name=name, description=content_type,
                                                         options=ObjectMetaOptions(max_chunk_size=CHUNK_SIZE)))
        return BodyRef(name=name, size=len(data), content_type=content_type, sha256=hashlib.sha256(data).hexdigest())


class Advertiser:
    """Keeps this worker's :class:`WorkerAdvert` in ``baton-workers`` current."""

    def __init__(
        self, kv: KeyValue, *, worker_id: str, capacity: int, in_use: Callable[[], int], caps: Capabilities,
        gpu: Gpu | None, version: str, clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.worker_id = worker_id
        self.key = advert_key("transcode", worker_id)
        self.capacity = capacity
        self.in_use = in_use
        gpus = (gpu,) if gpu else ((Gpu(id=caps.gpu, name=caps.gpu_name or f"GPU {caps.gpu}"),) if caps.gpu else ())
        self.hardware = Hardware(gpus=gpus, encoders=caps.encoders, decoders=caps.decoders)
        self.version = version
        self.clock = clock
        self._now = asyncio.Event()
        self.withdrawn = False

    def advert(self) -> WorkerAdvert:
        return WorkerAdvert(
            worker_id=self.worker_id,
            kind="transcode",
            job_subject=job_subject("transcode", self.worker_id),
            at=self.clock(),
            models=(ModelState(pipeline=TRANSCODE_PIPELINE, warm=True, capacity=self.capacity,
                               in_use=min(self.in_use(), self.capacity)),),
            hardware=self.hardware,
            version=self.version,
        )

    def changed(self) -> None:
        """Put the advert at once (slots taken or freed)."""
        self._now.set()

    async def put(self) -> None:
        if not self.withdrawn:
            await self.kv.put(self.key, encode(self.advert()))

    async def run(self, jobs: Subscription, *, tick: float = 0.2) -> None:
        """Put the advert until the job subscription is drained, then withdraw it."""
        last = 0.0
        while True:
            # nats-py marks a drained subscription closed; there is no public flag for it.
            if getattr(jobs, "_closed", False):
                await self.withdraw()
                return
            if self._now.is_set() or time.monotonic() - last >= ADVERT_INTERVAL:
                self._now.clear()
                last = time.monotonic()
                try:
                    await self.put()
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                    log.warning("cannot put the worker advert", extra={"error": repr(exc)})
            try:
                await asyncio.wait_for(self._now.wait(), timeout=tick)
            except TimeoutError:
                pass

    async def withdraw(self) -> None:
        """Delete this worker's key: readers stop sending it jobs at once."""
        if self.withdrawn:
            return
        self.withdrawn = True
        try:
            await self.kv.delete(self.key)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("cannot withdraw the worker advert; its TTL will", extra={"error": repr(exc)})
