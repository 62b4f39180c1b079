"""Jobs: how the negotiator hands one paid AI job or one segment to one worker.

Routing: the negotiator picks the worker (a warm model with free capacity, from
``baton-workers``) and sends a core-NATS request to that worker's own
``job_subject``; no queue group, so the capacity it counted is the capacity it
uses. A worker that vanished answers "no responders" at once and the negotiator
may pick another. Jobs are not stored in JetStream: the gateway is holding the
HTTP request open, so a job redelivered after it gave up would be work nobody
pays for.

Replies go to the request's reply subject: one :class:`JobResult` or
:class:`JobError`; with ``stream=True``, any number of :class:`JobChunk` first
(LLM tokens, in ``seq`` order). Bodies up to ``INLINE_BODY_MAX`` ride inline;
larger ones go through the ``baton-bodies`` object store as a :class:`BodyRef`
(go-livepeer takes segments up to ``MAX_SEGMENT_BYTES``; NATS keeps a 1 MB max
payload). The trace context travels in the ``traceparent`` header and, for a
worker that replies later or on other subjects, in the envelope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .base import Message
from .storage import ObjectStoreSpec, SubjectSpec
from .workers import WorkerKind

__all__ = [
    "BODIES",
    "BODIES_BUCKET",
    "BODIES_MAX_BYTES",
    "BODY_TTL",
    "INLINE_BODY_MAX",
    "JOB_ERROR_STATUS",
    "JOBS",
    "MAX_SEGMENT_BYTES",
    "BodyRef",
    "JobChunk",
    "JobError",
    "JobErrorCode",
    "JobReply",
    "JobRequest",
    "JobResult",
    "Output",
    "job_subject",
]

MAX_SEGMENT_BYTES = 300_000_000
"""The largest segment go-livepeer accepts on /segment."""
INLINE_BODY_MAX = 512 * 1024
"""Bodies up to this many bytes travel inline (base64 in JSON: about 700 KB, under the 1 MB max payload)."""
BODIES_BUCKET = "baton-bodies"
BODY_TTL = 15 * 60.0
"""Seconds a body object lives if nobody deletes it: go-livepeer's 15-minute AI worker timeout."""
BODIES_MAX_BYTES = 2 * 1024**3
"""Memory the object store may hold; a put beyond it fails, and the job is refused for capacity."""

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


def job_subject(kind: WorkerKind, worker_id: str) -> str:
    """The subject one worker takes its jobs on; its advert names it."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in worker_id)
    return f"baton.jobs.{kind}.{safe}"


class BodyRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A body too large to ride inline: an object in the ``baton-bodies`` object store.

    The writer puts it before sending the message that names it; the negotiator
    deletes the job's objects when the job ends (the TTL is the backstop).
    """

    name: str
    """Object name: ``<job_id>/in`` or ``<job_id>/out/<n>``."""
    size: NonNegative
    content_type: str = "application/octet-stream"
    sha256: str = ""
    """Hex digest, checked by the reader."""


class Output(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One result file: a rendition, an image, an audio clip. Exactly one of ``data`` and ``ref`` is set."""

    name: str = ""
    """Rendition profile name or file name."""
    content_type: str = "application/octet-stream"
    data: bytes = b""
    ref: BodyRef | None = None
    pixels: NonNegative = 0
    """Decoded pixels of a rendition (what transcoding is billed by, and what gateways re-count)."""


class JobRequest(Message, frozen=True, kw_only=True, tag="job.v1"):
    job_id: str
    """Unique per job; the negotiator's request id (also the body objects' prefix)."""
    kind: WorkerKind
    pipeline: str
    model_id: str = ""
    deadline: Annotated[float, msgspec.Meta(description="Unix time after which the result is useless.")]
    billed_units: NonNegative = 0
    """Units the negotiator charged for (spec §6); for transcoding the worker reports pixels instead."""
    max_units: NonNegative = 0
    """The most units the job may use, where the worker measures them (audio-to-text: the seconds it may decode,
    x 1000); a worker refuses input that needs more (``bad_input``). 0: no limit but the worker's own."""
    params: dict[str, Any] = {}
    """The pipeline's request fields (ai-runner's JSON), or the transcode profiles and segment fields."""
    body: bytes = b""
    """The input file inline (at most ``INLINE_BODY_MAX`` bytes)."""
    body_ref: BodyRef | None = None
    stream: bool = False
    """Stream the result as JobChunk messages (LLM ``stream: true``)."""
    traceparent: str = ""
    """W3C trace context, also sent as the ``traceparent`` header."""
    sender: str = ""
    """Gateway ETH address (hex), for the worker's logs and metrics; empty offchain."""


class JobResult(Message, frozen=True, kw_only=True, tag="job-result.v1"):
    job_id: str
    content_type: str = "application/json"
    data: bytes = b""
    """The runner's JSON response (AI) or empty (transcoding: see outputs)."""
    outputs: tuple[Output, ...] = ()
    units: NonNegative = 0
    """Units actually produced (output pixels for transcoding); 0 = as billed."""
    seconds: float = 0.0
    """Time the worker spent on the job."""


JobErrorCode = Literal[
    "bad_input",  # the request or body is not valid for this pipeline
    "model_not_loaded",  # this worker does not serve (pipeline, model) now
    "busy",  # no free capacity on this worker
    "deadline_exceeded",
    "body_missing",  # the BodyRef could not be read (expired, bad digest)
    "runner_failed",  # the model runner or ffmpeg failed
    "internal",
]

JOB_ERROR_STATUS: dict[str, int] = {
    "bad_input": 400,
    "model_not_loaded": 503,
    "busy": 503,
    "deadline_exceeded": 500,
    "body_missing": 500,
    "runner_failed": 500,
    "internal": 500,
}
"""The HTTP status a gateway gets for each code (503 = insufficient capacity, as go-livepeer)."""


class JobError(Message, frozen=True, kw_only=True, tag="job-error.v1"):
    job_id: str
    code: JobErrorCode
    message: str = ""
    """Sent on to the gateway; never holds a secret."""
    retryable: bool = False
    """True when another worker may succeed (busy, model_not_loaded) and nothing was streamed yet."""


class JobChunk(Message, frozen=True, kw_only=True, tag="job-chunk.v1"):
    """One piece of a streamed result; the stream ends with a JobResult or JobError."""

    job_id: str
    seq: NonNegative
    """0, 1, 2...: a gap means a lost chunk, and the negotiator fails the job."""
    data: str
    """One SSE event's data (an LLM token chunk as JSON text)."""


JobReply = JobResult | JobError | JobChunk


JOBS = SubjectSpec(
    subject="baton.jobs.<kind>.<worker_id>",
    pattern="request",
    writer="negotiator",
    readers=("inference", "transcode (the chosen worker only)"),
    schema="jobs.JobRequest",
    reply="jobs.JobChunk* then jobs.JobResult | jobs.JobError",
    purpose="one job to the worker the negotiator picked; core NATS, at most once",
)

BODIES = ObjectStoreSpec(
    bucket=BODIES_BUCKET,
    ttl=BODY_TTL,
    storage="memory",
    max_bytes=BODIES_MAX_BYTES,
    writer="negotiator (inputs), inference and transcode (outputs)",
    readers=("inference", "transcode", "negotiator"),
    schema="raw bytes, named by jobs.BodyRef",
    purpose="bodies above INLINE_BODY_MAX, in chunks; deleted when the job ends (linked renditions: at the TTL)",
)
