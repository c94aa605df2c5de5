"""``JobqBackend``: Django's ``@task`` functions run on jobq workers.

``settings.TASKS = {"default": {"BACKEND": "jobq.contrib.django.backend.JobqBackend",
"QUEUES": ["django-tasks"]}}``. Each Django queue is the jobq queue of the same name, served
by the jobq task ``django.<queue>`` that ``jobq.contrib.django.worker`` declares (list that
module in ``JOBQ_TASKS`` of the app and of its workers). Priorities (-100..100) map onto jobq's
0..9 (0 -> 5, the default), ``run_after`` is a delay, results are the jobq job's record (the
result id is the job id). ``OPTIONS``: ``ATTEMPTS`` (default 1: Django tasks are not retried
unless asked) and ``ENQUEUE_ON_COMMIT`` (default False, as Django's own backends: enqueue when
the current transaction of ``DATABASE`` commits; the result's id is known at once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from jobq.contrib.django.client import get_client, jobq_settings
from jobq.contrib.django.tasks_api import (
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    BaseTaskBackend,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from jobq.errors import NotFound
from jobq.jobs import JobPublic, State
from jobq.keys import DEFAULT_PRIORITY, PRIORITY_MAX, PRIORITY_MIN, job_id_for

WORKER_MODULE = "jobq.contrib.django.worker"  # declares the jobq tasks that run Django tasks
TASK_PREFIX = "django."  # jobq task of Django queue q: "django.q" (its jobq queue is q)
ERROR_MARK = "DjangoTaskError: "  # how worker.py's failure reasons start

_STATUS = {State.WAITING: "READY", State.DELAYED: "READY", State.ACTIVE: "RUNNING",
           State.COMPLETED: "SUCCESSFUL", State.FAILED: "FAILED", State.CANCELLED: "FAILED"}


def jobq_task_name(queue_name: str) -> str:
    return f"{TASK_PREFIX}{queue_name}"


def jobq_priority(priority: int) -> int:
    """Django's -100..100 (0 default) onto jobq's 0..9 (5 default), keeping the order."""
    if priority >= 0:
        span = PRIORITY_MAX - DEFAULT_PRIORITY
        return DEFAULT_PRIORITY + round(priority * span / TASK_MAX_PRIORITY)
    span = DEFAULT_PRIORITY - PRIORITY_MIN
    return DEFAULT_PRIORITY - round(priority * span / TASK_MIN_PRIORITY)


class JobqBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = params.get("OPTIONS", {})
        self.attempts = int(options.get("ATTEMPTS", 1))
        self.enqueue_on_commit = bool(options.get("ENQUEUE_ON_COMMIT", False))
        self.database = options.get("DATABASE")

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        client = get_client()
        result = TaskResult(task=task, id="", status=TaskResultStatus.READY, enqueued_at=None,
                            started_at=None, finished_at=None, last_attempted_at=None,
                            args=args, kwargs=kwargs, backend=self.alias, errors=[],
                            worker_ids=[])
        payload = {"task": task.module_path, "positional": result.args,
                   "keyword": result.kwargs, "backend": self.alias}
        name = jobq_task_name(task.queue_name)
        key = f"django-task:{uuid.uuid4().hex}"
        delay_s = 0.0
        if task.run_after is not None:
            delay_s = max(0.0, (task.run_after - timezone.now()).total_seconds())
        send = partial(client.enqueue, name, key, payload, attempts=self.attempts,
                       delay_s=delay_s, priority=jobq_priority(task.priority))
        if self.enqueue_on_commit:
            client.registry.get(name).validate(payload)  # now, not after the commit
            transaction.on_commit(send, using=self.database)
            job_id = job_id_for(task.queue_name, key)
        else:
            job_id = send().job_id
        object.__setattr__(result, "id", job_id)
        object.__setattr__(result, "enqueued_at", timezone.now())
        return result

    def check(self, **kwargs: Any) -> list[Any]:
        """Warn (``manage.py check``) when jobq's tasks do not include the module that declares
        the Django tasks' jobq tasks: every enqueue would fail with "unknown task"."""
        try:
            tasks = jobq_settings().tasks
        except ImproperlyConfigured as exc:
            return [checks.Error(str(exc), id="jobq.E001")]
        if WORKER_MODULE in tasks:
            return []
        return [checks.Warning(
            f"the jobq backend {self.alias!r} needs {WORKER_MODULE!r} in jobq's tasks",
            hint="add it to settings.JOBQ['TASKS'] (or JOBQ_TASKS), and to the workers' "
                 "JOBQ_TASKS", id="jobq.W001")]

    def get_result(self, result_id: str) -> Any:
        try:
            job = get_client().get_job(result_id)
        except NotFound:
            raise TaskResultDoesNotExist(result_id) from None
        if not job.type.startswith(TASK_PREFIX):
            raise TaskResultDoesNotExist(result_id)
        return task_result_of(job)


def task_result_of(job: JobPublic) -> Any:
    """The Django ``TaskResult`` a jobq job's record reads as."""
    task = import_string(job.payload["task"])
    started = [h for h in job.history if h.startedAt]
    result = TaskResult(
        task=task, id=job.jobId, status=TaskResultStatus(_STATUS[job.state]),
        enqueued_at=_when(job.createdAt), started_at=_when(started[0].startedAt if started
                                                            else None),
        finished_at=_when(job.finishedAt),
        last_attempted_at=_when(started[-1].startedAt if started else None),
        args=job.payload["positional"], kwargs=job.payload["keyword"],
        backend=job.payload["backend"],
        errors=[_task_error(h.error) for h in job.history if h.error],
        worker_ids=[h.worker or "" for h in started],
    )
    if job.state is State.COMPLETED:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _when(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def _task_error(reason: str) -> Any:
    """A failure reason the worker wrote (``DjangoTaskError: <class path>\\n<traceback>``)."""
    if reason.startswith(ERROR_MARK):
        path, _, trace = reason[len(ERROR_MARK):].partition("\n")
        return TaskError(exception_class_path=path, traceback=trace)
    kind = reason.partition(":")[0]  # jobq's own (TimeoutError: no result within ...)
    return TaskError(exception_class_path=f"builtins.{kind}" if kind.isidentifier()
                     else "builtins.Exception", traceback=reason)
