"""The inference service's errors: each maps to a ``JobError`` code (``baton_common.schemas.jobs``)."""

from __future__ import annotations

__all__ = ["BadInput", "Busy", "InferenceError", "ModelNotLoaded", "RunnerFailed"]


class InferenceError(Exception):
    """Base: ``code`` is the JobError code, ``retryable`` whether another worker may succeed."""

    code = "internal"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(InferenceError):
    code = "bad_input"


class ModelNotLoaded(InferenceError):
    code = "model_not_loaded"
    retryable = True


class Busy(InferenceError):
    code = "busy"
    retryable = True


class BodyMissing(InferenceError):
    code = "body_missing"


class DeadlineExceeded(InferenceError):
    code = "deadline_exceeded"


class RunnerFailed(InferenceError):
    code = "runner_failed"


CODES = {cls.code: cls for cls in (BadInput, ModelNotLoaded, Busy, BodyMissing, DeadlineExceeded, RunnerFailed)}


def from_code(code: str, message: str) -> InferenceError:
    """The error a Triton model reported as ``{"code", "message"}``."""
    return CODES.get(code, RunnerFailed)(message)
