"""``enqueue_in_outbox``: a job written into the outbox table in the caller's transaction, so it
exists if and only if that transaction commits, even when the process dies right after the
commit (R27). The relay (``manage.py jobq_outbox_relay``) moves it into jobq; its job id is
known at once, derived from the row's id."""

from __future__ import annotations

from typing import Any

from jobq.contrib.django.client import get_client
from jobq.contrib.outbox.schema import DEFAULT_SOURCE, row_job_id
from jobq.flow import check_priority


def enqueue_in_outbox(
    type: str,
    payload: dict[str, Any],
    *,
    priority: int | None = None,
    delay_s: float = 0.0,
    using: str | None = None,
    source: str = DEFAULT_SOURCE,
) -> str:
    """Insert the job's outbox row on database ``using`` (in its current transaction) and
    return the job's id. The payload is validated now, so a bad one fails the request."""
    from jobq.contrib.django.models import OutboxJob

    task = get_client().registry.get(type)
    task.validate(payload)
    if priority is not None:
        check_priority(priority)
    row = OutboxJob.objects.using(using).create(task=type, payload=payload, priority=priority,
                                                delay_s=delay_s)
    return row_job_id(task.queue, row.pk, source)
