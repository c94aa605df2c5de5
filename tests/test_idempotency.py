"""R2: one idempotency key, one job, however concurrently it is sent."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from jobq.client import Client
from jobq.connection import connect
from jobq.errors import IdempotencyConflict
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
