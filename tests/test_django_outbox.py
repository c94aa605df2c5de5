"""The outbox from Django: ``enqueue_in_outbox`` writes the row in the view's transaction and
``manage.py jobq_outbox_relay`` moves it into jobq (R27), on a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django_helpers import job_or_none, jobq_settings_of
from fixtures import REPO, process_env
from postgres import PostgresServer

from jobq.settings import Settings

pytestmark = pytest.mark.any_server
WELCOME = {"email": "albert@example.com", "name": "Albert"}


@pytest.fixture
def django_jobq(django_project: PostgresServer, settings: Settings) -> Iterator[None]:
    from jobq.contrib.django.models import OutboxJob

    OutboxJob.objects.all().delete()  # the project's database is shared by this process's tests
    with jobq_settings_of(settings):
        yield


def test_outbox_row_in_the_transaction_then_the_management_command_relays_it(
    django_jobq: None, settings: Settings,
) -> None:
    from django.db import transaction

    from jobq.contrib.django.models import OutboxJob
    from jobq.contrib.django.outbox import enqueue_in_outbox

    with transaction.atomic():
        job_id = enqueue_in_outbox("welcome-email", WELCOME, priority=7)
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_in_outbox("welcome-email", {**WELCOME, "name": "Rolled"})
        raise RuntimeError("roll back")
    assert [(r.task, r.payload["name"]) for r in OutboxJob.objects.all()] == \
        [("welcome-email", "Albert")]
    assert job_or_none(job_id) is None  # nothing in jobq until the relay moves it

    env = process_env(settings, DJANGO_SETTINGS_MODULE="django_project.settings",
                      JOBQ_TEST_PG_PORT=os.environ["JOBQ_TEST_PG_PORT"])
    done = subprocess.run([sys.executable, "-m", "django", "jobq_outbox_relay", "--until-empty",
                           "--metrics-port", "0"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"created":1' in done.stdout.replace(" ", ""), done.stdout
    job = job_or_none(job_id)
    assert job is not None and job.priority == 7 and job.payload == WELCOME
    assert not OutboxJob.objects.exists()
