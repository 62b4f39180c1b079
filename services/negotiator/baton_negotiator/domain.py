"""The orchestrator's pure logic: workers and their slots, capabilities, prices, billed units.

No I/O here: the KV watches (``state.py``) feed ``WorkerPool`` with adverts, and
the adapters ask it for a slot, a capability set or a price.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction

from baton_common.capabilities import DEFAULT_CAPABILITIES, bitstring, pipeline_by_name
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.pricing import PriceTable
from baton_common.schemas.workers import ADVERT_MAX_AGE, WorkerAdvert, WorkerKind

__all__ = [
    "LIVEPEER_VERSION",
    "KeyedBuckets",
    "ModelCapacity",
    "Slot",
    "TokenBucket",
    "WorkerPool",
    "auto_adjust",
    "capabilities_for",
    "compatible",
    "price_for_pairs",
    "version_tuple",
]

LIVEPEER_VERSION = "0.9.1"
"""The go-livepeer version Baton's wire behaviour matches (read from go-livepeer 0.9.1): gateways
compare it with -orchMinLivepeerVersion as a semver."""
TRANSCODE = "transcode"


@dataclass(frozen=True, slots=True)
class ModelCapacity:
    """One warm (pipeline, model) summed over the fresh adverts."""

    pipeline: str
    model_id: str
    capacity: int
    in_use: int
    runner_version: str = ""


@dataclass(eq=False)
class Slot:
    """One reserved job slot on one worker; ``release`` is idempotent."""

    worker_id: str
    job_subject: str
    kind: WorkerKind
    pipeline: str
    model_id: str
    _pool: WorkerPool | None = field(default=None, repr=False)

    def release(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._release(self)


class WorkerPool:
    """The fresh worker adverts, and the slots this replica holds on them.

    A worker's advert counts the jobs in use when it was put; slots taken here
    since then count too (the larger of the two is taken as in use). With
    several replicas the counts still lag: a full worker answers ``busy`` and
    the dispatcher asks the next one.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, max_age: float = ADVERT_MAX_AGE) -> None:
        self._adverts: dict[str, WorkerAdvert] = {}
        self._held: dict[tuple[str, str, str], int] = {}
        self._clock = clock
        self._max_age = max_age

    def put(self, key: str, advert: WorkerAdvert | None) -> None:
        if advert is None:
            self._adverts.pop(key, None)
        else:
            self._adverts[key] = advert

    def fresh(self) -> list[WorkerAdvert]:
        oldest = self._clock() - self._max_age
        return [a for a in self._adverts.values() if a.at >= oldest]

    def _free(self, advert: WorkerAdvert, pipeline: str, model_id: str) -> int:
        for m in advert.models:
            if m.pipeline == pipeline and m.model_id == model_id and m.warm:
                held = self._held.get((advert.worker_id, pipeline, model_id), 0)
                return m.capacity - max(m.in_use, held)
        return 0

    def reserve(self, kind: WorkerKind, pipeline: str, model_id: str, *, exclude: Iterable[str] = ()) -> Slot | None:
        """A slot on the fresh worker with the most free slots for (pipeline, model), or None."""
        skip = set(exclude)
        best, best_free = None, 0
        for advert in self.fresh():
            if advert.kind != kind or advert.worker_id in skip:
                continue
            free = self._free(advert, pipeline, model_id)
            if free > best_free:
                best, best_free = advert, free
        if best is None:
            return None
        key = (best.worker_id, pipeline, model_id)
        self._held[key] = self._held.get(key, 0) + 1
        return Slot(best.worker_id, best.job_subject, kind, pipeline, model_id, self)

    def _release(self, slot: Slot) -> None:
        key = (slot.worker_id, slot.pipeline, slot.model_id)
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)

    @property
    def held(self) -> int:
        """Slots this replica holds now (0 when every job ended)."""
        return sum(self._held.values())

    def models(self) -> list[ModelCapacity]:
        """Every warm AI (pipeline, model) of the fresh inference adverts, with summed capacity and use."""
        total: dict[tuple[str, str], list[int]] = {}
        versions: dict[tuple[str, str], str] = {}
        for advert in self.fresh():
            if advert.kind != "inference":
                continue
            for m in advert.models:
                if not m.warm or m.pipeline == TRANSCODE:
                    continue
                key = (m.pipeline, m.model_id)
                held = self._held.get((advert.worker_id, m.pipeline, m.model_id), 0)
                acc = total.setdefault(key, [0, 0])
                acc[0] += m.capacity
                acc[1] += min(m.capacity, max(m.in_use, held))
                versions.setdefault(key, m.runner_version)
        return [ModelCapacity(p, mid, cap, use, versions[(p, mid)]) for (p, mid), (cap, use) in sorted(total.items())]

    def transcode_capacity(self) -> int:
        return sum(m.capacity for a in self.fresh() if a.kind == "transcode" for m in a.models
                   if m.pipeline == TRANSCODE and m.warm)

    def hardware(self) -> list[lp_rpc_pb2.HardwareInformation]:
        out = []
        for advert in sorted(self.fresh(), key=lambda a: a.worker_id):
            if not advert.hardware.gpus:
                continue
            gpus = {str(i): lp_rpc_pb2.GPUComputeInfo(id=g.id, name=g.name, major=g.major, minor=g.minor,
                                                       memory_free=g.memory_free, memory_total=g.memory_total)
                    for i, g in enumerate(advert.hardware.gpus)}
            for m in advert.models:
                if m.warm and m.pipeline != TRANSCODE:
                    out.append(lp_rpc_pb2.HardwareInformation(pipeline=m.pipeline, model_id=m.model_id, gpu_info=gpus))
        return out


def capabilities_for(models: Iterable[ModelCapacity], *, transcode_capacity: int = 0) -> lp_rpc_pb2.Capabilities:
    """go-livepeer's defaults (always: gateways need their bits to be a subset of ours) plus the warm models."""
    models = list(models)
    caps = lp_rpc_pb2.Capabilities(version=LIVEPEER_VERSION)
    ids: set[int] = set(DEFAULT_CAPABILITIES)
    for capability in DEFAULT_CAPABILITIES:
        caps.capacities[capability] = max(1, transcode_capacity)
    for m in models:
        capability = pipeline_by_name(m.pipeline).capability
        ids.add(capability)
        caps.capacities[capability] = caps.capacities[capability] + m.capacity
        entry = caps.constraints.PerCapability[capability].models[m.model_id]
        entry.warm = True
        entry.capacity = m.capacity
        entry.capacityInUse = m.in_use
        entry.runnerVersion = m.runner_version
    caps.bitstring.extend(bitstring(sorted(ids)))
    return caps


def version_tuple(version: str) -> tuple[int, int, int] | None:
    """A semver's (major, minor, patch), prerelease and build ignored; None if it is not one."""
    core = version.strip().lstrip("v").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def compatible(ours: lp_rpc_pb2.Capabilities, theirs: lp_rpc_pb2.Capabilities, *, models: bool = True) -> str:
    """Why a gateway's capabilities are not served here ('' when they are; spec section 6).

    ``models=False`` checks the version and bits only: a job for a model nobody serves is
    refused for capacity (503) by the dispatcher, as go-livepeer's CheckAICapacity does.
    """
    if theirs.constraints.minVersion:
        want, have = version_tuple(theirs.constraints.minVersion), version_tuple(ours.version)
        if want is not None and (have is None or have < want):
            return f"version {ours.version} is below the gateway's minimum {theirs.constraints.minVersion}"
    for i, word in enumerate(theirs.bitstring):
        mine = ours.bitstring[i] if i < len(ours.bitstring) else 0
        if word & ~mine:
            return "capabilities not supported"
    for capability, constraint in theirs.constraints.PerCapability.items() if models else ():
        if capability not in ours.constraints.PerCapability:
            continue
        served = ours.constraints.PerCapability[capability].models
        for model_id, wanted in constraint.models.items():
            if model_id not in served:
                return f"model {model_id} is not served"
            if wanted.warm and not served[model_id].warm:
                return f"model {model_id} is not warm"
    return ""


def auto_adjust(base: Fraction, multiplier: Fraction) -> Fraction:
    """go-livepeer's -autoAdjustPrice: trunc(base x (1 + 1/multiplier) x 1000) / 1000 (base if multiplier is 0)."""
    if multiplier <= 0 or base <= 0:
        return base
    return Fraction(math.trunc(base * (1 + 1 / multiplier) * 1000), 1000)


def price_for_pairs(table: PriceTable, sender_hex: str, pairs: Iterable[tuple[int, str]]) -> Fraction:
    """PriceInfoForCaps before adjustment: the sum of the (capability, model) prices, else the base price."""
    total = Fraction(0)
    for capability, model_id in pairs:
        total += table.capability_price(capability, model_id, sender_hex) or 0
    return total if total > 0 else table.base_for(sender_hex)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; full at first."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = now

    def refill(self, now: float) -> float:
        """The tokens held ``now``."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def spend(self, now: float) -> None:
        """Take one token ``now`` (the caller checked ``refill``: a bucket may go below zero, and waits longer)."""
        self.refill(now)
        self.tokens -= 1


class KeyedBuckets:
    """A ``TokenBucket`` per key (a client, a payer), at most ``max_keys`` of them: a bucket back to full holds
    nothing worth keeping and is forgotten first, then the oldest."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def left(self, key: str, now: float) -> float:
        """The tokens ``key`` holds ``now`` (a full bucket when it has none yet; nothing is kept for it)."""
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else bucket.refill(now)

    def get(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets = {k: b for k, b in self._buckets.items() if b.refill(now) < self.burst}
                if len(self._buckets) >= self.max_keys:
                    self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket
