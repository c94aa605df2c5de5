"""R12: with retention 500, 10,000 completed jobs (two rounds of ten times what is kept) leave
keys and memory bounded."""

from __future__ import annotations

import asyncio

import pytest
from fixtures import eventually, single_node_only
from redis.asyncio import Redis

from jobq.client import Client
from jobq.settings import Settings
from jobq.tasks import Registry

KEEP = 500  # not the default (1,000): the worker must be applying the setting
ROUND = 10 * KEEP  # each round finishes ten times what is kept


async def _count_keys(redis: Redis, prefix: str) -> int:
    return sum([1 async for _ in redis.scan_iter(match=f"{prefix}:*", count=1000)])


@pytest.mark.timeout(300)
@single_node_only
async def test_completed_jobs_are_trimmed_and_memory_stays_flat(
    settings: Settings, registry: Registry, redis: Redis, start_worker
) -> None:
    # Idempotency records expire by age (default 7 days); shortened here so two rounds show
    # the steady state instead of a week's accumulation.
    short = settings.model_copy(update={"idempotency_retention_s": 2})
    client = Client(redis, registry, short)
    start_worker("bench-queue:64", JOBQ_COMPLETED_KEEP=str(KEEP), JOBQ_IDEMPOTENCY_RETENTION_S="2",
                 JOBQ_LOG_LEVEL="warning")
    q = client.keys("bench-queue")
    memory = []
    for round_no in range(2):
        for start in range(0, ROUND, KEEP):
            await asyncio.gather(*(
                client.enqueue("noop", f"r{round_no}-{i}", {"n": i})
                for i in range(start, start + KEEP)))

        async def drained() -> bool:
            return await redis.llen(q.wait) == 0 and await redis.zcard(q.active) == 0

        await eventually(drained, timeout=120, what=f"round {round_no} to drain")
        assert await redis.zcard(q.completed) <= KEEP

        async def idempotency_records_expired() -> bool:
            return await _count_keys(redis, f"{short.key_prefix}:*:idem") == 0

        await eventually(idempotency_records_expired, timeout=30, what="records to expire")
        keys_now = await _count_keys(redis, short.key_prefix)
        assert keys_now <= KEEP + 10, keys_now
        await redis.memory_purge() if hasattr(redis, "memory_purge") else None
        memory.append((await redis.info("memory"))["used_memory"])
    # The second 10,000 jobs cost no memory that stays: flat within allocator noise.
    assert memory[1] <= memory[0] * 1.1, memory
