"""Prefetch (worker/prefetch.py) keeps the guarantees of jobs that are leased but not started:
renewed and put back unspent at shutdown (R9), never hoarded from another worker, a pause and a
late high-priority job honoured (R15, R17), a cancel means it never starts (R16), and a
concurrency limit counts it (R17).

The in-process tests hold prefetched jobs for as long as they need (FRESH_S raised) to look at
them; the process tests run the worker as deployed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fixtures import eventually, job_in, metrics_port
from inprocess import InProcessWorker, in_process_worker

from jobq.admin import cancel_job, set_paused
from jobq.client import Client, JobRequest
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import Registry

QUEUE = "prio-queue"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "flowtasks"]})


@pytest.fixture
def order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The start log of in-process handlers (flowtasks appends each job id as it starts)."""
    path = tmp_path / "order.log"
    monkeypatch.setenv("JOBQ_TEST_ORDER_FILE", str(path))
    return path


def started(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


async def run_short_jobs(client: Client, task: str, tag: str, count: int, **payload: object
                         ) -> list[str]:
    """Enqueue ``count`` jobs of no length and wait until all completed: the lane now knows its
    jobs are short, and prefetches."""
    ids = [(await client.enqueue(task, f"{tag}{i}", dict(payload))).job_id for i in range(count)]
    for job_id in ids:
        await eventually(lambda j=job_id: job_in(client, j, State.COMPLETED), what=f"{job_id}")
    return ids


async def prefetched(worker: InProcessWorker, count: int) -> None:
    async def held() -> bool:
        return sum(len(lane.buffer) for lane in worker.runner.lanes) == count

    await eventually(held, timeout=10, what=f"{count} prefetched jobs")


async def test_prefetched_jobs_are_renewed_and_put_back_unspent_at_shutdown(
    client: Client, settings: Settings, registry: Registry, order: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("jobq.worker.prefetch.FRESH_S", 30.0)
    settings = settings.model_copy(update={"lease_s": 1.0})
    async with in_process_worker(settings, registry, QUEUE, 2, renew=True) as worker:
        await run_short_jobs(client, "prio-record", "warm", 2)
        # One batch, so that one claim leases all four: two start, two wait prefetched.
        answers = await client.enqueue_many(
            [JobRequest("prio-record", f"long{i}", {"seconds": 30}) for i in range(2)]
            + [JobRequest("prio-record", f"next{i}", {}) for i in range(2)])
        ids = [a.job_id for a in answers if not isinstance(a, Exception)]
        running, waiting = ids[:2], ids[2:]
        await prefetched(worker, 2)
        q = client.keys(QUEUE)
        first_deadline = await client.redis.zscore(q.active, waiting[0])
        held = worker.leases.snapshot()[QUEUE]
        assert all(any(job_id == j for j, _ in held) for job_id in running + waiting)

        async def renewed() -> bool:
            return (await client.redis.zscore(q.active, waiting[0])) > first_deadline

        await eventually(renewed, timeout=3, what="the prefetched job's lease to be renewed")
        runner = worker.runner
        runner.stop()
        await runner.drain(asyncio.get_running_loop().time())
        assert await runner.hand_back() == 4
    for job_id in waiting:  # as if never claimed: no attempt, no history, no hand-back counted
        job = await client.get_job(job_id)
        assert job.state is State.WAITING and job.attempts == 0 and job.history == [], job
        assert job.processedAt is None, job  # no first-claim time for a job that never ran
        assert await client.redis.hget(q.job(job_id), "handbacks") is None
    for job_id in running:
        job = await client.get_job(job_id)
        assert job.state is State.WAITING and job.attempts == 0
        assert [h.outcome for h in job.history] == ["handed-back"]
    assert set(started(order)).isdisjoint(waiting)


async def test_a_cancelled_prefetched_job_never_starts(
    client: Client, settings: Settings, registry: Registry, order: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("jobq.worker.prefetch.FRESH_S", 30.0)
    async with in_process_worker(settings, registry, QUEUE, 1, renew=True) as worker:
        await run_short_jobs(client, "prio-record", "warm", 2)
        long = (await client.enqueue("prio-record", "long", {"seconds": 3})).job_id
        victim = (await client.enqueue("prio-record", "victim", {})).job_id
        await prefetched(worker, 1)
        assert (await cancel_job(client, victim, who="test")).state == "active"
        job = await eventually(lambda: job_in(client, victim, State.CANCELLED), timeout=5,
                               what="the prefetched job to end cancelled")
        assert [h.outcome for h in job.history] == ["cancelled"]
        await eventually(lambda: job_in(client, long, State.COMPLETED), what="the long job")
        assert victim not in started(order)


async def test_a_prefetched_job_holds_its_concurrency_slot(
    client: Client, settings: Settings, registry: Registry, order: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tenant-single allows one running job per tenant: a prefetched one counts."""
    monkeypatch.setattr("jobq.worker.prefetch.FRESH_S", 30.0)
    q = client.keys("single-queue")
    async with in_process_worker(settings, registry, "single-queue", 1) as worker:
        await run_short_jobs(client, "tenant-single", "warm", 2, tenant="w")
        await client.enqueue("tenant-single", "long", {"tenant": "z", "seconds": 30})
        held = (await client.enqueue("tenant-single", "held", {"tenant": "y"})).job_id
        await prefetched(worker, 1)
        other = (await client.enqueue("tenant-single", "other", {"tenant": "y"})).job_id
        answer = await client.scripts.claim_answer(q, 5, 30_000, "w2", (0, 0))
        assert answer.jobs == [] and answer.held_concurrency == 1
        worker.runner.stop()
        await worker.runner.drain(asyncio.get_running_loop().time())
        await worker.runner.hand_back()
    # Put back, the job gives its slot back: the other worker may start one of tenant y now.
    answer = await client.scripts.claim_answer(q, 5, 30_000, "w2", (0, 0))
    assert {c.job_id for c in answer.jobs} >= {held} and other not in started(order)


async def test_a_prefetching_worker_does_not_hoard_a_small_queue(
    client: Client, start_worker, tmp_path: Path,
) -> None:
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [start_worker(f"{QUEUE}:4", JOBQ_TEST_ORDER_FILE=str(log)) for log in logs]
    for worker in workers:
        await metrics_port(worker)
    # Until both have run short jobs (each lane then prefetches).
    n = 0
    while not all(started(log) for log in logs):
        await run_short_jobs(client, "prio-record", f"warm{n}-", 8)
        n += 1
    before = [len(started(log)) for log in logs]
    small = [(await client.enqueue("prio-record", f"small{i}", {"seconds": 0.5})).job_id
             for i in range(8)]
    for job_id in small:
        await eventually(lambda j=job_id: job_in(client, j, State.COMPLETED), what=job_id)
    split = [len(set(started(log)[b:]) & set(small)) for log, b in zip(logs, before, strict=True)]
    assert split == [4, 4], split  # each worker's four slots, none held by the other
    backlog = await run_short_jobs(client, "prio-record", "flood", 200, seconds=0.005)
    shares = [len(set(started(log)) & set(backlog)) for log in logs]
    print(f"small queue split {split}, 200-job backlog split {shares}")
    assert min(shares) >= 50, shares


async def test_a_pause_and_a_later_urgent_job_overtake_a_prefetched_one(
    client: Client, start_worker, tmp_path: Path,
) -> None:
    """A job prefetched behind a long one goes back within FRESH_S: it does not start while
    the queue is paused, and a higher-priority job enqueued after it starts first."""
    log = tmp_path / "order.log"
    await metrics_port(start_worker(f"{QUEUE}:1", JOBQ_TEST_ORDER_FILE=str(log)))
    await run_short_jobs(client, "prio-record", "warm", 3)
    long = (await client.enqueue("prio-record", "long", {"seconds": 1.0})).job_id
    await eventually(lambda: job_in(client, long, State.ACTIVE), what="the long job")
    behind = [(await client.enqueue("prio-record", f"behind{i}", {})).job_id for i in range(2)]
    await set_paused(client, QUEUE, True, who="test")
    urgent = (await client.enqueue("prio-record", "urgent", {}, priority=9)).job_id
    await eventually(lambda: job_in(client, long, State.COMPLETED), what="the long job")
    await asyncio.sleep(1.0)  # a window in which a held prefetched job would have started
    for job_id in [*behind, urgent]:
        job = await client.get_job(job_id)
        assert job.state is State.WAITING and job.attempts == 0, job
    await set_paused(client, QUEUE, False, who="test")
    for job_id in [urgent, *behind]:
        await eventually(lambda j=job_id: job_in(client, j, State.COMPLETED), what=job_id)
    assert started(log)[-3:] == [urgent, *behind]


async def test_a_high_priority_job_overtakes_all_but_a_bounded_number_of_prefetched_ones(
    client: Client, start_worker, tmp_path: Path,
) -> None:
    """Under a flood of short jobs (prefetch on), at most slots + prefetch depth (2 x 2) jobs
    start between the urgent job's enqueue and its start."""
    log = tmp_path / "order.log"
    await metrics_port(start_worker(f"{QUEUE}:2", JOBQ_TEST_ORDER_FILE=str(log)))
    await run_short_jobs(client, "prio-record", "warm", 4)
    flood = [f"flood{i}" for i in range(300)]
    await asyncio.gather(*(client.enqueue("prio-record", key, {"seconds": 0.005}, priority=1)
                           for key in flood))

    async def flowing() -> bool:
        return len(started(log)) >= 30

    await eventually(flowing, what="the flood to flow")
    urgent = (await client.enqueue("prio-record", "urgent", {}, priority=9)).job_id
    before = len(started(log))
    await eventually(lambda: job_in(client, urgent, State.COMPLETED), what="the urgent job")
    ahead = started(log).index(urgent) - before
    assert ahead <= 4, ahead
