"""SyncClient: the blocking producer facade, shared by threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from jobq import SyncClient
from jobq.errors import IdempotencyConflict
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import Registry

WELCOME = {"email": "albert@example.com", "name": "Albert"}


def test_sync_client_enqueues_once_across_threads(settings: Settings, registry: Registry) -> None:
    with SyncClient(settings, registry) as client:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(
                lambda _: client.enqueue("welcome-email", "same", WELCOME), range(40)))
        assert len({r.job_id for r in results}) == 1
        assert sum(not r.duplicate for r in results) == 1
        assert client.get_job(results[0].job_id).state is State.WAITING
        assert client.counts()["email-queue"]["waiting"] == 1
        with pytest.raises(IdempotencyConflict):
            client.enqueue("welcome-email", "same", {**WELCOME, "name": "Other"})
