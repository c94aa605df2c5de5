"""jobq.contrib.django: settings.JOBQ, one client per process, and enqueue_on_commit on a real
PostgreSQL (R27: a job exists only if the transaction that asked for it committed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_helpers import job_or_none, jobq_settings_of
from postgres import PostgresServer

from jobq import keys
from jobq.errors import InvalidPayload
from jobq.jobs import State
from jobq.settings import Settings

pytestmark = pytest.mark.any_server
WELCOME = {"email": "albert@example.com", "name": "Albert"}


@pytest.fixture
def django_jobq(django_project: PostgresServer, settings: Settings) -> Iterator[None]:
    with jobq_settings_of(settings):
        yield


def test_settings_jobq_maps_onto_jobq_settings(django_jobq: None, settings: Settings) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from jobq.contrib.django import get_client, jobq_settings

    assert jobq_settings().key_prefix == settings.key_prefix
    assert get_client() is get_client()  # one client per process
    with override_settings(JOBQ={"REDIS_URL": settings.redis_url, "LEASE": 3}), \
            pytest.raises(ImproperlyConfigured, match="LEASE"):
        jobq_settings()


def test_committed_view_gives_exactly_one_job(django_jobq: None) -> None:
    from django.test import Client
    from django_project.shop.models import Order

    response = Client().post("/orders", {"email": "a@example.com", "name": "Ann"})
    assert response.status_code == 201
    body = response.json()
    assert Order.objects.filter(pk=body["order"]).exists()
    job = job_or_none(body["jobId"])
    assert job is not None and job.state is State.WAITING
    assert job.payload == {"email": "a@example.com", "name": "Ann"}
    assert job.idempotencyKey == f"order-{body['order']}"


def test_rolled_back_view_gives_no_job(django_jobq: None) -> None:
    from django.test import Client
    from django_project.shop.models import Order

    before = Order.objects.count()
    response = Client(raise_request_exception=False).post(
        "/orders", {"email": "b@example.com", "name": "Bob", "fail": "1"})
    assert response.status_code == 500
    assert Order.objects.count() == before
    # The rolled-back order's id is gone with it, so look at the whole queue: this test's prefix
    # is its own, and nothing was enqueued under it.
    from jobq.contrib.django import get_client

    assert get_client().counts().get("email-queue", {}).get("waiting", 0) == 0


def test_job_id_returned_before_commit_and_job_created_at_commit(django_jobq: None) -> None:
    from django.db import transaction

    from jobq.contrib.django import enqueue_on_commit

    with transaction.atomic():
        job_id = enqueue_on_commit("welcome-email", "before-commit", WELCOME)
        assert job_id == keys.job_id_for("email-queue", "before-commit")
        assert job_or_none(job_id) is None  # not before the commit
    job = job_or_none(job_id)
    assert job is not None and job.state is State.WAITING


def test_enqueue_waits_for_the_commit_of_its_own_database(django_jobq: None) -> None:
    from django.db import transaction

    from jobq.contrib.django import enqueue_on_commit

    with transaction.atomic(using="other"):
        job_id = enqueue_on_commit("welcome-email", "on-other", WELCOME, using="other")
        with transaction.atomic():  # "default" commits: not the transaction that asked
            pass
        assert job_or_none(job_id) is None
    assert job_or_none(job_id) is not None

    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        rolled = enqueue_on_commit("welcome-email", "on-other-rolled", WELCOME, using="other")
        raise RuntimeError("roll back")
    assert job_or_none(rolled) is None


def test_bad_payload_fails_the_request_not_the_commit(django_jobq: None) -> None:
    from django.db import transaction

    from jobq.contrib.django import enqueue_on_commit

    with pytest.raises(InvalidPayload), transaction.atomic():
        enqueue_on_commit("welcome-email", "bad", {"email": 5})


def test_capture_on_commit_callbacks_runs_the_enqueue_in_a_test_case(django_jobq: None) -> None:
    """What the docs show for Django's TestCase, whose transaction never commits: the enqueue
    runs when captureOnCommitCallbacks(execute=True) ends, and the test's rollback keeps it."""
    from django.db import transaction
    from django.test import TestCase

    from jobq.contrib.django import enqueue_on_commit

    with pytest.raises(RuntimeError), transaction.atomic():  # as TestCase wraps each test
        with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
            job_id = enqueue_on_commit("welcome-email", "captured", WELCOME)
        assert len(callbacks) == 1
        assert job_or_none(job_id) is not None
        raise RuntimeError("TestCase rolls the test's transaction back")
