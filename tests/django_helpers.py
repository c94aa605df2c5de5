"""Helpers of the Django tests: ``settings.JOBQ`` pointing at this test's Redis and prefix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from jobq.errors import NotFound
from jobq.jobs import JobPublic
from jobq.settings import Settings


@contextmanager
def jobq_settings_of(settings: Settings, *more_tasks: str) -> Iterator[None]:
    """``settings.JOBQ`` for the test's jobq settings; the app drops its client on each change."""
    from django.test import override_settings

    with override_settings(JOBQ={"REDIS_URL": settings.redis_url,
                                 "KEY_PREFIX": settings.key_prefix,
                                 "TASKS": [*settings.tasks, *more_tasks]}):
        yield


def job_or_none(job_id: str) -> JobPublic | None:
    from jobq.contrib.django import get_client

    try:
        return get_client().get_job(job_id)
    except NotFound:
        return None
