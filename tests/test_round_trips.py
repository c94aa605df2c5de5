"""One script call per job under a backlog: the claim that fills a slot a completed job freed
carries that job's completion (``complete_claim``), at low concurrency and high alike. Counted on
the server (INFO commandstats), with a real worker draining the queue; without the carrying, a
job costs two calls (its claim and its completion)."""

from __future__ import annotations

import pytest
from fixtures import command_stats, eventually, metrics_port, reset_command_stats

from jobq.client import Client, JobRequest
from jobq.connection import Redis
from jobq.jobs import State

JOBS = 300


@pytest.mark.parametrize("concurrency", [1, 4, 64])
async def test_draining_a_backlog_costs_one_script_call_per_job(
    client: Client, redis: Redis, start_worker, concurrency: int,
) -> None:
    worker = start_worker(f"report-queue:{concurrency}")
    await metrics_port(worker)  # its start-up claims are not counted
    await client.scripts.load()
    await reset_command_stats(redis)
    results = await client.enqueue_many(
        [JobRequest("sleep", f"rt-{concurrency}-{n}", {"seconds": 0.002}) for n in range(JOBS)])
    job_ids = [r.job_id for r in results if not isinstance(r, Exception)]
    assert len(job_ids) == JOBS

    async def drained() -> bool:
        row = await client.queue_counts("report-queue")
        return row["completed"] == JOBS

    await eventually(drained, timeout=60, what=f"{JOBS} jobs completed")
    calls = (await command_stats(redis))["cmdstat_evalsha"]["calls"]
    # One enqueue_batch call, then about one call per job; renewals, the stall sweep and the
    # last completions (written alone once the queue is empty) fit in the slack.
    assert calls <= 1 + JOBS + JOBS // 10 + 10, f"{calls} script calls for {JOBS} jobs"
    jobs = [await client.get_job(job_id) for job_id in job_ids]
    assert {(j.state, j.attempts) for j in jobs} == {(State.COMPLETED, 1)}
