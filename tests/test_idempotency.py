"""R2: one idempotency key, one job, however concurrently it is sent."""

from __future__ import annotations

import asyncio

import pytest
from fixtures import eventually
from redis.asyncio import Redis

from jobq.client import Client
from jobq.connection import connect
from jobq.errors import IdempotencyConflict
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import Registry

WELCOME = {"email": "albert@example.com", "name": "Albert"}


async def test_hundred_concurrent_enqueues_of_one_key_make_one_job(
    settings: Settings, registry: Registry, redis: Redis
) -> None:
    # Ten clients with their own connections, ten concurrent calls each.
    clients = [Client(connect(settings.redis_url), registry, settings) for _ in range(10)]
    try:
        results = await asyncio.gather(*(
            c.enqueue("welcome-email", "user-123-welcome-v1", WELCOME)
            for c in clients for _ in range(10)
        ))
    finally:
        await asyncio.gather(*(c.redis.aclose() for c in clients))
    assert len({r.job_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await redis.llen(clients[0].keys("email-queue").wait) == 1


async def test_same_key_with_other_payload_is_a_conflict(client: Client) -> None:
    await client.enqueue("welcome-email", "k", WELCOME)
    with pytest.raises(IdempotencyConflict):
        await client.enqueue("welcome-email", "k", {**WELCOME, "email": "other@example.com"})
    assert (await client.counts())["email-queue"]["waiting"] == 1


async def _dead_letter(client: Client, key: str) -> str:
    """A welcome-email job that failed its only attempt: its DLQ id."""
    job_id = (await client.enqueue("welcome-email", key, WELCOME, attempts=1)).job_id
    _, _, (claimed,) = await client.scripts.claim(client.keys("email-queue"), 1, 30_000, "w1")
    failed = await client.scripts.fail(client.keys("email-queue"), job_id, claimed.token, "boom",
                                       0, permanent=False, outcome="failed", keep=10,
                                       max_age_ms=60_000)
    assert failed.dlq_id is not None
    return failed.dlq_id


async def _complete_next(client: Client, job_id: str) -> None:
    q = client.keys("email-queue")
    _, _, (claimed,) = await client.scripts.claim(q, 1, 30_000, "w1")
    assert claimed.job_id == job_id
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, claimed.token, "{}")]) == [True]


async def test_a_repeat_after_the_record_expired_is_still_a_duplicate_while_the_job_is_kept(
    settings: Settings, registry: Registry, redis: Redis
) -> None:
    """Enqueue and replay answer alike once the idempotency record expired (keys retained
    shorter than completed jobs): the kept job's own fingerprint still says "seen"."""
    client = Client(redis, registry, settings.model_copy(update={"idempotency_retention_s": 1}))
    dlq_id = await _dead_letter(client, "failing")
    enqueued = await client.enqueue("welcome-email", "done", WELCOME)
    await _complete_next(client, enqueued.job_id)
    replayed = await client.replay(dlq_id, "click-1")
    await _complete_next(client, replayed.job_id)
    q = client.keys("email-queue")
    records = [q.idempotency(replayed.job_id), q.idempotency(enqueued.job_id)]

    async def records_expired() -> bool:
        return not any([await redis.exists(record) for record in records])

    await eventually(records_expired, timeout=10, what="idempotency records to expire")
    again = await client.enqueue("welcome-email", "done", WELCOME)
    replayed_again = await client.replay(dlq_id, "click-1")
    assert (again.job_id, again.duplicate) == (enqueued.job_id, True)
    assert (replayed_again.job_id, replayed_again.duplicate) == (replayed.job_id, True)
    for job_id in (enqueued.job_id, replayed.job_id):  # neither overwritten nor queued again
        job = await client.get_job(job_id)
        assert (job.state, job.attempts) == (State.COMPLETED, 1)
    assert await redis.llen(client.keys("email-queue").wait) == 0
    assert len((await client.get_dlq_entry(dlq_id)).replays) == 1
    with pytest.raises(IdempotencyConflict):  # and other content is still refused
        await client.enqueue("welcome-email", "done", {**WELCOME, "name": "Other"})
