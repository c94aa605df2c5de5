"""The ``django.tasks`` backend: Django ``@task`` functions enqueued from the app run on a real
jobq worker process, with priorities, delays, context, async functions, errors and results."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django_helpers import jobq_settings_of
from fixtures import Proc, eventually
from postgres import PostgresServer

from jobq.contrib.django.backend import jobq_priority
from jobq.settings import Settings

pytestmark = pytest.mark.any_server
WORKER_TASKS = "jobq.contrib.django.worker"


@pytest.fixture
def django_jobq(django_project: PostgresServer, settings: Settings) -> Iterator[None]:
    with jobq_settings_of(settings, WORKER_TASKS):
        yield


def test_priorities_map_in_order_onto_jobq_levels() -> None:
    levels = [jobq_priority(p) for p in range(-100, 101)]
    assert levels == sorted(levels)
    assert (levels[0], jobq_priority(0), levels[-1]) == (0, 5, 9)


async def finished(result: Any) -> Any:
    async def done() -> bool:
        await asyncio.to_thread(result.refresh)
        return bool(result.is_finished)

    await eventually(done, what=f"task result {result.id} to finish")
    return result


async def test_django_tasks_run_end_to_end_on_a_jobq_worker(
    django_jobq: None, settings: Settings, start_worker: Callable[..., Proc],
) -> None:
    from django.utils import timezone
    from django_project.shop import tasks

    from jobq.contrib.django import get_client

    start_worker("django-tasks:2", JOBQ_TASKS=WORKER_TASKS,
                 DJANGO_SETTINGS_MODULE="django_project.settings",
                 JOBQ_TEST_PG_PORT=os.environ["JOBQ_TEST_PG_PORT"])
    added = await asyncio.to_thread(tasks.add.enqueue, 2, 3)
    assert added.status == "READY" and added.id.endswith("-django-tasks")
    contextual = await asyncio.to_thread(tasks.attempt_of.enqueue, "ctx")
    shouted = await asyncio.to_thread(tasks.shout.enqueue, "hi")
    counted = await asyncio.to_thread(tasks.count_orders.enqueue)
    failed = await asyncio.to_thread(tasks.fail.enqueue, "boom")
    later = await asyncio.to_thread(
        tasks.add.using(priority=60, run_after=timezone.now() + timedelta(seconds=1)).enqueue,
        1, 1)
    job = await asyncio.to_thread(get_client().get_job, later.id)
    assert (job.state.value, job.priority) == ("delayed", jobq_priority(60))

    assert (await finished(added)).return_value == 5
    assert (await finished(contextual)).return_value == {"label": "ctx", "attempt": 1}
    assert (await finished(shouted)).return_value == "HI"
    assert isinstance((await finished(counted)).return_value, int)  # the worker's own DB access
    assert (await finished(later)).return_value == 2
    result = await finished(failed)
    assert result.status == "FAILED"
    assert result.errors[0].exception_class is ValueError
    assert "boom" in result.errors[0].traceback
    fetched = await asyncio.to_thread(tasks.add.get_result, added.id)
    assert (fetched.args, fetched.status, fetched.attempts) == ([2, 3], "SUCCESSFUL", 1)
    assert fetched.finished_at >= fetched.started_at >= fetched.enqueued_at


def test_enqueue_on_commit_option_waits_for_the_commit(django_jobq: None) -> None:
    from django.db import transaction
    from django_helpers import job_or_none
    from django_project.shop import tasks

    from jobq.contrib.django.backend import JobqBackend

    backend = JobqBackend("on-commit", {"QUEUES": ["django-tasks"],
                                        "OPTIONS": {"ENQUEUE_ON_COMMIT": True}})
    with transaction.atomic():
        result = backend.enqueue(tasks.add, [1, 2], {})
        assert job_or_none(result.id) is None
    assert job_or_none(result.id) is not None
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled = backend.enqueue(tasks.add, [3, 4], {})
        raise RuntimeError("roll back")
    assert job_or_none(rolled.id) is None


def test_check_warns_when_the_worker_module_is_not_among_jobqs_tasks(
    django_project: PostgresServer, settings: Settings,
) -> None:
    from jobq.contrib.django.backend import JobqBackend

    backend = JobqBackend("default", {"QUEUES": ["django-tasks"]})
    with jobq_settings_of(settings):
        assert [m.id for m in backend.check()] == ["jobq.W001"]
    with jobq_settings_of(settings, WORKER_TASKS):
        assert backend.check() == []
