"""A worker process imports what running jobs needs and nothing of the API, the operator or the
dev supervisor (start-up time is the latency of scaling a queue up from zero), and runs on
uvloop."""

from __future__ import annotations

from collections.abc import Callable

from fixtures import Proc, eventually, job_in
from importtasks import HEAVY
from redis.asyncio import Redis

from jobq.client import Client
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import load_registry


async def test_worker_process_imports_no_api_operator_or_dev_modules(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc]
) -> None:
    tasks_settings = settings.model_copy(update={"tasks": ["importtasks"]})
    client = Client(redis, load_registry(tasks_settings.tasks), tasks_settings)
    start_worker("imports-queue:1", JOBQ_TASKS="importtasks")
    job_id = (await client.enqueue("loaded-modules", "m", {})).job_id
    job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), what="the report")
    assert job.result is not None
    assert job.result["heavy"] == [], f"a worker imported {job.result['heavy']} (none of {HEAVY})"
    assert job.result["loop"].startswith("uvloop"), job.result["loop"]
