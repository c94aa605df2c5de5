"""R17, rate limits: at most N starts in any window of the period, per queue across every
worker process and per key, counted from the job histories; a job held back spends no
attempt, and jobs of other keys keep flowing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import eventually, metrics_port, scrape
from flowcheck import all_completed, most_in_window, ms, starts

from jobq.client import Client
from jobq.errors import ConfigError
from jobq.flow import RateLimit
from jobq.settings import Settings, load_settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "flowtasks"]})


async def test_queue_rate_limit_holds_across_two_worker_processes(
    client: Client, start_worker, tmp_path: Path,
) -> None:
    rate = {"JOBQ_QUEUE_RATE_LIMITS": "qrate-queue=5/1s"}
    workers = [start_worker("qrate-queue:3", **rate) for _ in range(2)]
    for worker in workers:  # both up first: a slow start would leave the other all 20 jobs
        await metrics_port(worker)
    ids = [(await client.enqueue("queue-rated", f"r{i}", {"seconds": 0.2})).job_id
           for i in range(20)]
    jobs = await eventually(lambda: all_completed(client, ids), timeout=30,
                            what="the 20 jobs to complete")
    times = starts(jobs)
    assert len(times) == 20 and all(j.attempts == 1 for j in jobs)  # held: no attempt spent
    assert most_in_window(times, 1000) == 5
    assert times[-1] - times[0] >= 3000  # 20 starts at 5 per second: 4 windows
    assert len({h.worker for j in jobs for h in j.history}) == 2  # both processes started some


async def test_a_rate_limited_tenant_waits_while_others_flow_at_full_speed(
    client: Client, start_worker,
) -> None:
    worker = start_worker("krate-queue:8")
    port = await metrics_port(worker)
    limited = [(await client.enqueue("tenant-rated", f"a{i}", {"tenant": "a"})).job_id
               for i in range(12)]
    other = [(await client.enqueue("tenant-rated", f"b{i}", {"tenant": "b"})).job_id
             for i in range(3)]
    free = [(await client.enqueue("tenant-rated", f"f{i}", {"tenant": "free"})).job_id
            for i in range(6)]

    async def held() -> bool:
        counts = (await client.counts())["krate-queue"]
        job = await client.get_job(limited[-1])
        return counts["limited"] >= 1 and job.limitedBy == "rate"

    await eventually(held, what="tenant a's jobs to be held by its rate limit")
    jobs = await eventually(lambda: all_completed(client, limited + other + free), timeout=30,
                            what="every job to complete")
    by_id = {j.jobId: j for j in jobs}
    a_times = starts([by_id[i] for i in limited])
    assert most_in_window(a_times, 1000) == 3 and a_times[-1] - a_times[0] >= 3000
    assert all(j.attempts == 1 for j in jobs)
    fourth_a = a_times[3]
    assert all(ms(by_id[i].history[0].startedAt) < fourth_a for i in other + free)
    assert scrape(port)['jobq_jobs_limited_total{queue="krate-queue",reason="rate"}'] >= 9
    assert (await client.counts())["krate-queue"]["limited"] == 0  # every hold was released


def test_rate_limits_are_written_starts_per_period_and_bad_ones_refused() -> None:
    assert RateLimit.parse("10/1s") == RateLimit(10, 1.0)
    assert RateLimit.parse("5/500ms").per_ms == 500
    assert RateLimit.parse("100/m").per_ms == 60_000
    for bad in ("10", "ten/1s", "0/1s", "5/0s", "5/1d"):
        with pytest.raises(ConfigError):
            RateLimit.parse(bad)
    with pytest.raises(ConfigError, match="JOBQ_QUEUE_RATE_LIMITS"):
        load_settings(queue_rate_limits="email-queue:10/1s")
    assert load_settings(queue_rate_limits="a=1/1s, b=2/1m").queue_rate_limits == ["a=1/1s",
                                                                                  "b=2/1m"]


async def test_a_cancelled_rate_held_job_leaves_the_count(client: Client) -> None:
    q = client.keys("krate-queue")
    ids = [(await client.enqueue("tenant-rated", f"c{i}", {"tenant": "c"})).job_id
           for i in range(5)]
    answer = await client.scripts.claim_answer(q, 10, 30_000, "w1")
    assert len(answer.jobs) == 3 and answer.held_rate == 2
    held = await client.get_job(ids[4])
    assert (held.state.value, held.limitedBy, held.attempts) == ("delayed", "rate", 0)
    assert (await client.counts())["krate-queue"]["limited"] == 2
    assert await client.scripts.cancel(q, ids[4], 100, 10**9) is True
    assert (await client.counts())["krate-queue"]["limited"] == 1
