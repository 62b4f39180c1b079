"""Worker advertisement: what each inference or transcode worker serves, in KV.

Every worker instance puts one :class:`WorkerAdvert` under ``<kind>.<worker_id>``
in ``baton-workers``: at start, every ``ADVERT_INTERVAL`` seconds, and at once
whenever a model's state changes. Withdrawal is explicit: a model that goes
away (unloaded, crashed, GPU lost) is dropped from ``models`` in an immediate
put, and a worker that stops deletes its key before it drains. Readers (the
negotiator, the monitor) watch the bucket and ignore an advert whose ``at`` is
older than ``ADVERT_MAX_AGE``; the bucket's TTL only sweeps crashed workers.
The heartbeat (``baton-heartbeats``) stays about liveness; capacity lives here.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Message
from .storage import KvSpec

__all__ = [
    "ADVERT_INTERVAL",
    "ADVERT_MAX_AGE",
    "WORKERS",
    "WORKERS_BUCKET",
    "Gpu",
    "Hardware",
    "ModelState",
    "WorkerAdvert",
    "WorkerKind",
    "advert_key",
]

WORKERS_BUCKET = "baton-workers"
ADVERT_INTERVAL = 2.0
"""Seconds between two periodic adverts of one worker (a change is put at once)."""
ADVERT_MAX_AGE = 6.0
"""Readers skip an advert older than this: three missed intervals."""
ADVERT_TTL = 60.0
"""The bucket's max age: a backstop that sweeps the keys of workers that crashed."""

WorkerKind = Literal["inference", "transcode"]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class ModelState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One (pipeline, model) a worker serves; go-livepeer's ModelConstraint plus what the monitor needs."""

    pipeline: str
    """The AI pipeline (``text-to-image``, ``llm``...), or ``transcode`` for a transcode worker."""
    model_id: str = ""
    """Empty for transcoding."""
    warm: bool
    capacity: NonNegative
    """Jobs this worker runs at once for this model."""
    in_use: NonNegative = 0
    runner_version: str = ""
    load_seconds: float = 0.0
    """How long the model took to load (0 while not measured)."""
    memory_bytes: NonNegative = 0
    """GPU memory the loaded model holds."""
    demo: bool = False
    """A tiny random-weight demo model (offchain only): its outputs are noise."""


class Gpu(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One GPU, as go-livepeer's GPUComputeInfo."""

    id: str
    name: str
    major: NonNegative = 0
    minor: NonNegative = 0
    memory_total: NonNegative = 0
    memory_free: NonNegative = 0


class Hardware(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    gpus: tuple[Gpu, ...] = ()
    encoders: tuple[str, ...] = ()
    """Hardware encoders the worker can use, as ffmpeg names them (``h264_nvenc``, ``hevc_nvenc``)."""
    decoders: tuple[str, ...] = ()
    """Hardware decoders (``h264_cuvid``, ``hevc_cuvid``...)."""


class WorkerAdvert(Message, frozen=True, kw_only=True, tag="worker-advert.v1"):
    worker_id: str
    kind: WorkerKind
    job_subject: str
    """Where the negotiator sends this worker's jobs (:func:`baton_common.schemas.jobs.job_subject`)."""
    at: Annotated[float, msgspec.Meta(description="Unix time of this advert.")]
    models: tuple[ModelState, ...] = ()
    hardware: Hardware = Hardware()
    version: str = ""
    """Baton's version on the worker."""


def advert_key(kind: WorkerKind, worker_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in worker_id)
    return f"{kind}.{safe}"


WORKERS = KvSpec(
    bucket=WORKERS_BUCKET,
    key="<kind>.<worker_id>",
    ttl=ADVERT_TTL,
    history=1,
    storage="memory",
    writer="inference, transcode (each worker its own key)",
    readers=("negotiator", "monitor"),
    schema="workers.WorkerAdvert",
    purpose=f"what each worker serves; readers skip adverts older than {ADVERT_MAX_AGE:g} s; "
    "a withdrawal is an immediate put without the model, a stop deletes the key",
)
