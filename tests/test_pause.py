"""R15 on real worker processes: a paused queue starts no job (within a second of the pause),
accepts new jobs and loses none; resume restarts it; the autoscaler does not scale it up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from api_fixtures import assert_error
from fixtures import Proc, eventually, job_in, metrics_port, scrape
from redis.asyncio import Redis
from test_cancel import post_job

from jobq.client import Client
from jobq.jobs import State
from jobq.operator.autoscale import ScalePolicy, desired_replicas
from jobq.operator.backlog import read_backlog

PAUSED = 'jobq_queue_paused{queue="report-queue"}'


async def test_a_paused_queue_starts_nothing_keeps_everything_and_resumes(
    api: httpx.AsyncClient, client: Client, redis: Redis, start_worker: Callable[..., Proc]
) -> None:
    worker = start_worker("report-queue:4")
    port = await metrics_port(worker)
    first = await post_job(api, "sleep", "p-first", {"seconds": 0})
    await eventually(lambda: job_in(client, first, State.COMPLETED), what="a job before pause")

    paused = await api.post("/queues/report-queue/pause")
    assert paused.status_code == 200 and paused.json() == {"queue": "report-queue", "paused": True}
    # Within one second the idle worker's next claim has found the queue paused.
    async def worker_sees_pause() -> bool:
        return scrape(port).get(PAUSED) == 1

    await eventually(worker_sees_pause, timeout=1.5, what="the worker to see the pause")
    ids = [await post_job(api, "sleep", f"p-{n}", {"seconds": 0}) for n in range(20)]
    delayed = await post_job(api, "sleep", "p-delayed", {"seconds": 0}, delaySeconds=0.2)
    listed = (await api.get("/queues")).json()["queues"]
    assert next(q for q in listed if q["queue"] == "report-queue")["paused"] is True

    # A window in which an unpaused worker would have run all of them many times over.
    await asyncio.sleep(2.0)
    for job_id in ids:
        job = await client.get_job(job_id)
        assert job.state is State.WAITING and job.attempts == 0, job
    assert (await client.get_job(delayed)).attempts == 0
    backlog = await read_backlog(redis, client.keys("report-queue"))
    assert backlog.paused and backlog.waiting == 20 and backlog.total == 0
    assert desired_replicas(backlog.total, ScalePolicy(queue="report-queue", min_replicas=1,
                                                       max_replicas=10, jobs_per_replica=5,
                                                       scale_down_delay_s=0)) == 1

    resumed = await api.post("/queues/report-queue/resume")
    assert resumed.json() == {"queue": "report-queue", "paused": False}
    for job_id in [*ids, delayed]:
        job = await eventually(lambda j=job_id: job_in(client, j, State.COMPLETED),
                               what=f"job {job_id} after resume")
        assert job.attempts == 1
    assert scrape(port).get(PAUSED) == 0
    backlog = await read_backlog(redis, client.keys("report-queue"))
    assert not backlog.paused

    assert_error(await api.post("/queues/nope/pause"), 404, "not_found")
    assert_error(await api.get("/queues/report-queue/pause"), 405)


async def test_a_job_running_when_the_queue_pauses_finishes(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc]
) -> None:
    start_worker("report-queue:1")
    running = await post_job(api, "sleep", "p-running", {"seconds": 1.0})
    await eventually(lambda: job_in(client, running, State.ACTIVE), what="the job to start")
    assert (await api.post("/queues/report-queue/pause")).status_code == 200
    later = await post_job(api, "sleep", "p-later", {"seconds": 0})
    await eventually(lambda: job_in(client, running, State.COMPLETED), what="the running job")
    await asyncio.sleep(1.5)  # the freed slot claims nothing while paused
    assert (await client.get_job(later)).state is State.WAITING
