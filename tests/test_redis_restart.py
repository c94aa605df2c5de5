"""R11 for workers: a Redis restart does not stop a worker; it reconnects and carries on."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from fixtures import events, eventually, process_env

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.worker.runner import LANE_SPLIT_AT

WELCOME = {"email": "albert@example.com", "name": "Albert"}


@pytest.mark.parametrize("concurrency", [2, LANE_SPLIT_AT])  # one lane; two, each retrying
async def test_worker_survives_a_redis_restart(
    redis_server: ServerProcess, settings: Settings, registry: Registry, spawn, tmp_path: Path,
    concurrency: int,
) -> None:
    own = ServerProcess(redis_server.binary, tmp_path / "redis", appendonly=True).start()
    local = settings.model_copy(update={"redis_url": own.url})
    worker = spawn(["worker", "--queue", f"email-queue:{concurrency}", "--metrics-port", "0"],
                   process_env(local), name="worker")
    redis = connect(own.url)
    client = Client(redis, registry, local)
    try:
        first = (await client.enqueue("welcome-email", "before", WELCOME)).job_id

        async def completed(job_id: str) -> bool:
            return (await client.get_job(job_id)).state is State.COMPLETED

        await eventually(lambda: completed(first), what="the first job")

        own.stop()
        await eventually(lambda: _async(bool(events(worker, "worker.redis_unavailable"))),
                         what="the worker to notice the outage")
        own.start()  # same port, same AOF

        second = (await client.enqueue("welcome-email", "after", WELCOME)).job_id
        await eventually(lambda: completed(second), timeout=30, what="a job after the restart")
        # Back to normal: the idle worker is blocked on the queue again, not backing off, so
        # the next job starts at once (a stale blocking call once kept it retrying for seconds,
        # up to the 5 s cap of the reconnect backoff; 2.5 s leaves room for a loaded machine).
        third = (await client.enqueue("welcome-email", "steady", WELCOME)).job_id
        await eventually(lambda: completed(third), timeout=10, what="a job in steady state")
        job = await client.get_job(third)
        assert job.processedAt and job.createdAt
        started_after_s = (_t(job.processedAt) - _t(job.createdAt))
        assert started_after_s < 2.5, started_after_s
        assert worker.popen.poll() is None
        assert (await client.get_job(first)).state is State.COMPLETED  # AOF kept it
    finally:
        await redis.aclose()
        worker.stop()
        own.stop()


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _async(value: bool) -> bool:
    return value
