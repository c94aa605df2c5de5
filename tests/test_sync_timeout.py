"""Sync handlers past their timeout (review of d0f8ead, finding 7): a thread cannot be stopped,
so a timed-out handler keeps its pool thread. Jobs claimed after it must still run (before, they
queued behind the stuck thread, timed out without starting and spent their attempts), the
handler is told through ``ctx.cancelled``, and the stuck thread shows in
``jobq_worker_stuck_threads``."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fixtures import eventually
from inprocess import InProcessWorker, in_process_worker
from pydantic import BaseModel

from jobq.client import Client
from jobq.connection import Redis
from jobq.context import JobContext
from jobq.jobs import JobPublic, State
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.tasks import Registry, task
from jobq.worker.execute import execute

QUEUE = "stall-queue"
STALL_S = 2.0  # how long the non-cooperative handler blocks, whatever it is told
TIMEOUT_S = 0.5


class Numbered(BaseModel):
    n: int = 0


class Record:
    """What the handlers did, written from their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.stall_saw_cancel: bool | None = None
        self.stall_returned_at: float | None = None
        self.quick_started_at: list[float] = []


RECORD = Record()


@task("stall", queue=QUEUE, payload=Numbered, attempts=1, timeout_s=TIMEOUT_S)
def stall(ctx: JobContext, payload: Numbered) -> dict[str, Any]:
    """Blocks past its timeout and ignores ``ctx.cancelled`` (e.g. a socket read without a
    timeout); records whether it was told."""
    with RECORD.lock:
        RECORD.started.append("stall")
    time.sleep(STALL_S)  # the handler under test blocks; no condition stands behind this
    RECORD.stall_saw_cancel = ctx.cancelled
    RECORD.stall_returned_at = time.monotonic()
    return {}


@task("polite", queue=QUEUE, payload=Numbered, attempts=1, timeout_s=TIMEOUT_S)
def polite(ctx: JobContext, payload: Numbered) -> dict[str, Any]:
    """Works until told to stop through ``ctx.cancelled`` (at most 30 s)."""
    with RECORD.lock:
        RECORD.started.append("polite")
    deadline = time.monotonic() + 30
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"sawCancel": ctx.cancelled}


@task("quick", queue=QUEUE, payload=Numbered, attempts=1, timeout_s=TIMEOUT_S)
def quick(ctx: JobContext, payload: Numbered) -> dict[str, Any]:
    with RECORD.lock:
        RECORD.started.append(f"quick-{payload.n}")
        RECORD.quick_started_at.append(time.monotonic())
    return {"n": payload.n}


REGISTRY = Registry([stall, polite, quick])


async def ended(client: Client, job_id: str) -> JobPublic | None:
    job = await client.get_job(job_id)
    return job if job.state in (State.COMPLETED, State.FAILED) else None


def stuck(worker: InProcessWorker) -> float | None:
    return worker.metrics.registry.get_sample_value("jobq_worker_stuck_threads",
                                                    {"queue": QUEUE})


async def test_jobs_after_a_stuck_sync_handler_run_instead_of_timing_out_unstarted(
    settings: Settings, redis: Redis,
) -> None:
    global RECORD
    RECORD = record = Record()
    client = Client(redis, REGISTRY, settings)
    async with in_process_worker(settings, REGISTRY, QUEUE, 1) as worker:
        stalled = (await client.enqueue("stall", "stall-1", {})).job_id
        quick_ids = [(await client.enqueue("quick", f"quick-{n}", {"n": n})).job_id
                     for n in range(3)]

        # The stalled attempt ends at its timeout (retried or dead-lettered at once), while
        # its thread still runs and keeps the only slot.
        job = await eventually(lambda: ended(client, stalled), timeout=10,
                               what="the stalled attempt to time out")
        assert job.state is State.FAILED and [h.outcome for h in job.history] == ["timeout"]

        async def counted_stuck() -> bool:
            return stuck(worker) == 1 or record.stall_returned_at is not None

        await eventually(counted_stuck, timeout=5, what="the stuck thread to be counted")
        assert record.stall_returned_at is None, "the thread returned before it was counted"

        for n, job_id in enumerate(quick_ids):
            done = await eventually(lambda job_id=job_id: ended(client, job_id), timeout=15,
                                    what=f"quick job {n} to end")
            assert done.state is State.COMPLETED, (n, done.failedReason)
            assert done.result == {"n": n} and done.attempts == 1
        assert record.started == ["stall", "quick-0", "quick-1", "quick-2"]
        assert record.stall_saw_cancel is True
        # Concurrency 1: no later job started while the stuck thread still ran.
        assert record.stall_returned_at is not None
        assert min(record.quick_started_at) >= record.stall_returned_at
        assert stuck(worker) == 0

        await worker.all_slots_free()
        assert worker.loop_errors == []


async def test_a_sync_handler_that_checks_cancelled_returns_at_its_timeout(
    settings: Settings, redis: Redis,
) -> None:
    global RECORD
    RECORD = record = Record()
    client = Client(redis, REGISTRY, settings)
    async with in_process_worker(settings, REGISTRY, QUEUE, 1) as worker:
        polite_id = (await client.enqueue("polite", "polite-1", {})).job_id
        quick_id = (await client.enqueue("quick", "quick-after-polite", {"n": 7})).job_id
        job = await eventually(lambda: ended(client, polite_id), timeout=10,
                               what="the polite handler's attempt to time out")
        assert job.state is State.FAILED and [h.outcome for h in job.history] == ["timeout"]
        done = await eventually(lambda: ended(client, quick_id), timeout=10,
                                what="the next job to end")
        assert done.state is State.COMPLETED and done.result == {"n": 7}
        assert record.started == ["polite", "quick-7"]
        assert stuck(worker) == 0 and worker.loop_errors == []


async def test_the_timeout_of_a_sync_handler_counts_from_when_its_thread_starts_it(
    settings: Settings, redis: Redis,
) -> None:
    """Time spent waiting for a pool thread is not the handler's: with the only thread busy
    for longer than the timeout, a quick handler queued behind it still succeeds."""
    loop = asyncio.get_running_loop()
    ctx = JobContext(job_id="j", type="quick", queue=QUEUE, attempt=1, max_attempts=1,
                     worker="w1", token="w1:1", settings=settings, log=get_logger("test"),
                     _scripts=Scripts(redis), _keys=QueueKeys(settings.key_prefix, QUEUE),
                     _loop=loop)
    threads = ThreadPoolExecutor(1)
    release = threading.Event()
    try:
        busy = loop.run_in_executor(threads, release.wait, 10)
        queued = asyncio.create_task(execute(quick, ctx, {"n": 3}, threads, TIMEOUT_S))
        # The quick handler waits for the thread longer than its whole timeout.
        done, _ = await asyncio.wait({queued}, timeout=2 * TIMEOUT_S)  # bounded: nothing ends
        assert not done
        release.set()
        outcome = await asyncio.wait_for(queued, 5)
        await busy
    finally:
        release.set()
        threads.shutdown(wait=True)
    assert outcome.ok and outcome.result_json == '{"n":3}' and not ctx.cancelled
