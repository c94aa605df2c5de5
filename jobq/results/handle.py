"""``JobHandle[R]``: what a typed task's ``enqueue`` answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pydantic import ValidationError

from jobq.errors import InvalidResult, JobCancelled, JobDeadLettered, ResultTimeout
from jobq.jobs import JobPublic, State
from jobq.results.types import result_adapter
from jobq.tasks import Task

if TYPE_CHECKING:
    from jobq.client import Client
    from jobq.sync import SyncClient

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class JobHandle(Generic[R]):
    """A job created by ``task.enqueue(client, ...)``; ``duplicate`` when the idempotency key
    had made it already (the handle then names that first job)."""

    job_id: str
    queue: str
    duplicate: bool
    task: Task[Any, R]
    client: Client

    async def status(self) -> JobPublic:
        """The job's record now (``Client.get_job``)."""
        return await self.client.get_job(self.job_id)

    # The wait is bounded inside (on asyncio objects only, never a Redis call: jobq.watch).
    async def result(self, timeout: float | None = None) -> R:  # noqa: ASYNC109
        """Wait for the job's end (``timeout`` seconds at most, None: no limit) on the queue's
        event stream, no polling, and give its result validated by the task's result type.

        Raises JobDeadLettered (failed for good), JobCancelled, ResultTimeout (not finished
        yet), JobExpired (its record was trimmed), NotFound, InvalidResult."""
        job = await self.client.watch().wait(self.job_id, timeout)
        return result_of(self.task, job)


@dataclass(frozen=True, slots=True)
class SyncJobHandle(Generic[R]):
    """``JobHandle`` for a ``SyncClient``: the same methods, blocking."""

    handle: JobHandle[R]
    client: SyncClient

    @property
    def job_id(self) -> str:
        return self.handle.job_id

    @property
    def duplicate(self) -> bool:
        return self.handle.duplicate

    def status(self) -> JobPublic:
        return self.client.run(self.handle.status())

    def result(self, timeout: float | None = None) -> R:
        """See ``JobHandle.result``."""
        return self.client.run(self.handle.result(timeout))


def result_of(task: Task[Any, R], job: JobPublic) -> R:
    """The result of a job as read, or the error that says why there is none."""
    if job.state is State.COMPLETED:
        adapter = result_adapter(task)
        if adapter is None:
            return cast(R, job.result)
        try:
            return cast(R, adapter.validate_python(job.result))
        except ValidationError as exc:
            raise InvalidResult(f"job {job.jobId}: its result does not fit task {task.name!r}'s "
                                f"result type: {exc.error_count()} error(s)") from exc
    if job.state is State.FAILED:
        raise JobDeadLettered(f"job {job.jobId} failed and was dead-lettered: "
                              f"{job.failedReason}", job.jobId, job.failedReason,
                              job.deadLetterId)
    if job.state is State.CANCELLED:
        raise JobCancelled(f"job {job.jobId} was cancelled")
    raise ResultTimeout(f"job {job.jobId} is still {job.state.value}")
