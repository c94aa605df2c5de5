"""A queue's slots in lanes (worker/runner.py): from LANE_SPLIT_AT slots on, two claim loops
share the queue's concurrency. Every slot is used, never more than the concurrency, and a
lane whose slots are all busy never holds back the completions of the other."""

from __future__ import annotations

from datetime import datetime

import pytest
from fixtures import eventually, metrics_port

from jobq.client import Client, JobRequest
from jobq.jobs import State
from jobq.worker.runner import LANE_SPLIT_AT, lane_sizes

CONCURRENCY = LANE_SPLIT_AT  # the smallest queue with two lanes: 16 + 16
SHORT_JOBS = 5
WRITTEN_WITHIN_S = 0.5  # a 50 ms job, claimed to completion written


@pytest.mark.parametrize("concurrency", [1, 4, LANE_SPLIT_AT - 1, LANE_SPLIT_AT, 33, 64])
def test_lanes_share_out_exactly_the_queue_concurrency(concurrency: int) -> None:
    sizes = lane_sizes(concurrency)
    assert sum(sizes) == concurrency
    assert len(sizes) == (1 if concurrency < LANE_SPLIT_AT else 2)
    assert max(sizes) - min(sizes) <= 1


async def test_every_slot_of_both_lanes_runs_a_job_and_no_more(
    client: Client, start_worker,
) -> None:
    worker = start_worker(f"report-queue:{CONCURRENCY}")
    await metrics_port(worker)
    jobs = CONCURRENCY + 8
    await client.enqueue_many(
        [JobRequest("sleep", f"lanes-full-{n}", {"seconds": 3}) for n in range(jobs)])

    async def all_slots_busy() -> bool:
        row = await client.queue_counts("report-queue")
        assert int(row["active"]) <= CONCURRENCY, row  # never more than the concurrency
        return row["active"] == CONCURRENCY

    await eventually(all_slots_busy, timeout=20, what=f"{CONCURRENCY} jobs active at once")
    row = await client.queue_counts("report-queue")
    assert row["waiting"] == jobs - CONCURRENCY, row


async def test_a_lane_busy_with_long_jobs_does_not_hold_back_the_other_lanes_completions(
    client: Client, start_worker,
) -> None:
    worker = start_worker(f"report-queue:{CONCURRENCY}")
    await metrics_port(worker)
    lane = CONCURRENCY // 2
    # One batch: the first lane to claim leases all of them and keeps its slots busy.
    await client.enqueue_many(
        [JobRequest("sleep", f"lanes-long-{n}", {"seconds": 60}) for n in range(lane)])

    async def first_lane_full() -> bool:
        return (await client.queue_counts("report-queue"))["active"] == lane

    await eventually(first_lane_full, timeout=20, what=f"{lane} long jobs active")
    # Each short job's completion is written at once by its own lane, not when the busy lane
    # next claims or its idle wait times out (up to IDLE_BLOCK_S, 1 s, later).
    for n in range(SHORT_JOBS):
        short = await client.enqueue("sleep", f"lanes-short-{n}", {"seconds": 0.05})

        async def completed(job_id: str = short.job_id) -> bool:
            return (await client.get_job(job_id)).state == State.COMPLETED

        await eventually(completed, timeout=10, what=f"short job {n} completed")
        job = await client.get_job(short.job_id)
        assert job.processedAt and job.finishedAt
        took = (datetime.fromisoformat(job.finishedAt)
                - datetime.fromisoformat(job.processedAt)).total_seconds()
        assert took < WRITTEN_WITHIN_S, f"short job {n}: claimed to written in {took:.2f}s"
    assert (await client.queue_counts("report-queue"))["active"] == lane
