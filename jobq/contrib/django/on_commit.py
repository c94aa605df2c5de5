"""``enqueue_on_commit``: the job is created if and only if the caller's transaction commits,
and its id is known at once.

jobq derives a job's id from its queue and idempotency key, so the id is returned before the
commit (Celery's ``delay_on_commit`` cannot, celery#8976). The payload is validated now, in the
view, so a bad payload fails the request instead of a callback after the commit. The enqueue
itself runs in ``transaction.on_commit`` of the given database alias: a rollback drops it.
A process that dies between the commit and that callback loses the job; when that must not
happen, write the job into the outbox (``jobq.contrib.django.outbox``) instead.

Tests: Django's ``TestCase`` never commits, so wrap the code under test in
``self.captureOnCommitCallbacks(execute=True)`` to run the enqueue."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from jobq import keys
from jobq.contrib.django.client import get_client
from jobq.jobs import Backoff


def enqueue_on_commit(
    type: str,
    idempotency_key: str,
    payload: dict[str, Any],
    *,
    using: str | None = None,
    attempts: int | None = None,
    backoff: Backoff | None = None,
    delay_s: float = 0.0,
    priority: int | None = None,
    robust: bool = False,
) -> str:
    """Enqueue the job when the transaction of database ``using`` commits (at once outside a
    transaction) and return its job id now. ``robust=True`` logs an enqueue error after the
    commit instead of raising it (Django's ``on_commit(robust=...)``)."""
    client = get_client()
    task = client.registry.get(type)  # UnknownTask now, not after the commit
    task.validate(payload)  # InvalidPayload now
    transaction.on_commit(
        partial(client.enqueue, type, idempotency_key, payload, attempts=attempts,
                backoff=backoff, delay_s=delay_s, priority=priority),
        using=using, robust=robust,
    )
    return keys.job_id_for(task.queue, idempotency_key)
