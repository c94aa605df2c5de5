"""The jobq side of ``JobqBackend``: list this module in a worker's ``JOBQ_TASKS`` (with
``DJANGO_SETTINGS_MODULE`` set) and it serves every queue of every ``JobqBackend`` in
``settings.TASKS`` through the jobq task ``django.<queue>``. Importing it sets Django up."""

from __future__ import annotations

import traceback
from typing import Any

import django
from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string
from pydantic import BaseModel

from jobq.context import JobContext
from jobq.contrib.django.backend import JobqBackend, jobq_task_name
from jobq.contrib.django.tasks_api import TaskContext, TaskResult, TaskResultStatus
from jobq.errors import PermanentError
from jobq.tasks import Task, task

django.setup()


class DjangoTaskCall(BaseModel):
    """One call of a Django task: its module path, JSON arguments and backend alias."""

    task: str
    positional: list[Any]
    keyword: dict[str, Any]
    backend: str


class DjangoTaskError(Exception):
    """A Django task raised: the message carries its class path and traceback (for
    ``TaskResult.errors``)."""


def run_django_task(ctx: JobContext, call: DjangoTaskCall) -> Any:
    """Run the Django task on this worker thread, with fresh database connections."""
    close_old_connections()
    try:
        django_task = import_string(call.task)
        if django_task.takes_context:
            result = TaskResult(task=django_task, id=ctx.job_id, status=TaskResultStatus.RUNNING,
                                enqueued_at=None, started_at=None, finished_at=None,
                                last_attempted_at=None, args=call.positional, kwargs=call.keyword,
                                backend=call.backend, errors=[],
                                worker_ids=[ctx.worker] * ctx.attempt)
            context = TaskContext(task_result=result)
            value = django_task.call(context, *call.positional, **call.keyword)
        else:
            value = django_task.call(*call.positional, **call.keyword)
    except ImportError as exc:
        raise PermanentError(f"cannot import task {call.task!r}: {exc}") from exc
    except Exception as exc:
        kind = type(exc)
        path = f"{kind.__module__}.{kind.__qualname__}"
        raise DjangoTaskError(f"{path}\n{''.join(traceback.format_exception(exc))}") from exc
    finally:
        close_old_connections()
    return value


def declare() -> dict[str, Task[Any, Any]]:
    """One jobq task per queue of each ``JobqBackend`` in ``settings.TASKS``."""
    declared: dict[str, Task[Any, Any]] = {}
    for params in getattr(settings, "TASKS", {}).values():
        backend = import_string(params["BACKEND"])
        if not (isinstance(backend, type) and issubclass(backend, JobqBackend)):
            continue
        attempts = int(params.get("OPTIONS", {}).get("ATTEMPTS", 1))
        for queue in params.get("QUEUES", ["default"]):
            name = jobq_task_name(queue)
            declared[name.replace(".", "_").replace("-", "_")] = task(
                name, queue=queue, payload=DjangoTaskCall, attempts=attempts)(run_django_task)
    return declared


globals().update(declare())  # jobq's load_registry collects the module's Task values
