"""The transcode service's errors: each a machine-readable ``code`` of :data:`~baton_common.schemas.jobs.JobErrorCode`.

The domain raises only these; the bus adapter turns each into a
:class:`~baton_common.schemas.jobs.JobError` reply (``code``, ``message``,
``retryable``) in one place. Messages go to the gateway: they name the
profile or the setting at fault and never hold a secret or a path.
"""

from __future__ import annotations

from typing import ClassVar

from baton_common.schemas.jobs import JOB_ERROR_STATUS, JobErrorCode

__all__ = [
    "INVALID_VIDEO",
    "OUTPUT_FRAMES",
    "BadProfile",
    "BadSegment",
    "BodyMissing",
    "DeadlineExceeded",
    "EncoderFailed",
    "NoFreeSlot",
    "NvencSessionLimit",
    "TranscodeError",
    "WrongJob",
]


INVALID_VIDEO = "TranscoderInvalidVideo"
"""lpms's ErrTranscoderVid, word for word: no video stream, or no video frame (an audio-only segment). go-livepeer
gateways match the exact text (``ffmpeg.NonRetryableErrs``) and do not retry it on another orchestrator."""
OUTPUT_FRAMES = "Output frame count larger than expected"
"""lpms's output frame guard (lpms_ERR_OUTPUT_GUARD_FRAME_BUDGET), word for word: also non-retryable at a gateway."""


class TranscodeError(Exception):
    code: ClassVar[JobErrorCode] = "internal"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def status_code(self) -> int:
        return JOB_ERROR_STATUS[self.code]


class BadProfile(TranscodeError):
    """A profile that cannot be produced as asked (codec/container mismatch, odd size, unknown enum)."""

    code = "bad_input"


class BadSegment(TranscodeError):
    """The segment does not decode: corrupt, truncated before any frame, or not video."""

    code = "bad_input"


class WrongJob(TranscodeError):
    """A job that is not a transcode job, or whose params do not decode."""

    code = "bad_input"


class NoFreeSlot(TranscodeError):
    """Every slot of this worker is taken: go-livepeer's OrchestratorBusy; another worker may take it."""

    code = "busy"
    retryable = True


class NvencSessionLimit(NoFreeSlot):
    """The GPU refused another NVENC session (consumer GPUs cap concurrent sessions)."""


class BodyMissing(TranscodeError):
    code = "body_missing"


class DeadlineExceeded(TranscodeError):
    code = "deadline_exceeded"


class EncoderFailed(TranscodeError):
    """ffmpeg failed on a segment that decodes: our side's failure."""

    code = "runner_failed"
