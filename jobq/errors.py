"""The one exception hierarchy of jobq. Handlers see two of them: RetryLater and PermanentError."""

from __future__ import annotations


class JobqError(Exception):
    """Base of every error jobq raises on purpose."""


class RetryLater(JobqError):
    """Raised by a handler: this attempt failed, retry after ``delay_s`` (or the task's backoff)."""

    def __init__(self, message: str = "retry requested", delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(JobqError):
    """Raised by a handler: fail now, skip the remaining attempts, dead-letter the job."""


class SoftTimeout(JobqError, TimeoutError):
    """Raised inside a sync handler run by the process executor when its timeout passes: it may
    clean up and must return soon; the child is killed at the hard timeout otherwise."""


class LeaseLost(JobqError):
    """This worker's lease on the job is gone (expired and taken back); its write was refused."""


class IdempotencyConflict(JobqError):
    """The idempotency key was already used with another type or payload (R2)."""


class UnknownTask(JobqError):
    """No task of that type is registered."""


class InvalidPayload(JobqError):
    """The payload does not fit the task's model."""

    def __init__(self, message: str, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class NotFound(JobqError):
    """No job or DLQ entry with that id."""


class JobExpired(NotFound):
    """The job existed (its idempotency record says so) but its record was trimmed (R12)."""


class ConfigError(JobqError):
    """A setting or a command-line value is invalid."""


class InvalidCursor(JobqError):
    """A pagination cursor that this server did not hand out."""


class QueuePaused(JobqError):
    """The queue is paused: claim leased nothing (the worker asks again shortly)."""


class JobFinished(JobqError):
    """The job has finished already (completed, failed or cancelled): nothing to cancel."""


class UnknownQueue(NotFound):
    """No job was ever created in that queue and no loaded task names it."""


class JobFailed(JobqError):
    """``JobHandle.result``: the job failed for good; ``reason`` is its last error."""

    def __init__(self, message: str, job_id: str, reason: str | None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.reason = reason


class JobDeadLettered(JobFailed):
    """``JobHandle.result``: the job spent its attempts (or failed permanently) and was
    dead-lettered; ``dlq_id`` names its DLQ entry (replay it from there)."""

    def __init__(self, message: str, job_id: str, reason: str | None,
                 dlq_id: str | None) -> None:
        super().__init__(message, job_id, reason)
        self.dlq_id = dlq_id


class JobCancelled(JobqError):
    """``JobHandle.result``: the job was cancelled; it has no result."""


class ResultTimeout(JobqError, TimeoutError):
    """``JobHandle.result``: the job had not finished when the wait ran out (it still may)."""


class InvalidResult(JobqError):
    """``JobHandle.result``: the stored result does not fit the task's result type."""
