"""``ctx.side_effect_blocking`` from sync handlers (review of d0f8ead, finding 11): the effect
runs in the handler's thread, not on the event loop (where a blocking effect stalled every job
of the process, and one that reported progress waited for itself for ever), and stays at most
once across attempts."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fixtures import eventually, job_in
from inprocess import in_process_worker
from pydantic import BaseModel

from jobq.client import Client
from jobq.connection import Redis
from jobq.context import JobContext
from jobq.jobs import Backoff, State
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.tasks import Registry, task

QUEUE = "effects-queue"


class Nothing(BaseModel):
    pass


class Record:
    def __init__(self) -> None:
        self.handler_threads: list[threading.Thread] = []
        self.effect_threads: list[threading.Thread] = []
        self.ran: list[bool] = []  # what side_effect_blocking answered, per attempt


RECORD = Record()


@task("effect-thread", queue=QUEUE, payload=Nothing, attempts=1)
def effect_thread(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    RECORD.handler_threads.append(threading.current_thread())
    ran = ctx.side_effect_blocking(
        "note", lambda: RECORD.effect_threads.append(threading.current_thread()))
    return {"ran": ran}


@task("effect-progress", queue=QUEUE, payload=Nothing, attempts=1)
def effect_progress(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    """An effect that reports progress while it runs (it waits for the event loop)."""

    def charge() -> None:
        ctx.progress_blocking(0.5, "charging")

    return {"ran": ctx.side_effect_blocking("charge", charge)}


@task("effect-once", queue=QUEUE, payload=Nothing, attempts=2, backoff=Backoff(delaySeconds=0))
def effect_once(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    """Runs its effect, then fails its first attempt: the retry must not run it again."""
    RECORD.ran.append(ctx.side_effect_blocking(
        "charge", lambda: RECORD.effect_threads.append(threading.current_thread())))
    if ctx.attempt == 1:
        raise RuntimeError("failed after the effect")
    return {"attempt": ctx.attempt}


REGISTRY = Registry([effect_thread, effect_progress, effect_once])


@pytest.fixture
def record() -> Record:
    global RECORD
    RECORD = Record()
    return RECORD


async def test_the_effect_runs_in_the_handlers_thread_not_on_the_event_loop(
    settings: Settings, redis: Redis, record: Record,
) -> None:
    loop_thread = threading.current_thread()  # the test's event loop runs the worker
    client = Client(redis, REGISTRY, settings)
    async with in_process_worker(settings, REGISTRY, QUEUE, 1):
        job_id = (await client.enqueue("effect-thread", "thread-1", {})).job_id
        job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=10,
                               what="the job to complete")
    assert job.result == {"ran": True}
    assert len(record.effect_threads) == 1
    assert record.effect_threads[0] is not loop_thread
    assert record.effect_threads == record.handler_threads


@pytest.mark.timeout(30)  # before the fix this deadlocked the event loop (of this test too)
async def test_an_effect_that_reports_progress_completes(
    settings: Settings, redis: Redis, record: Record,
) -> None:
    client = Client(redis, REGISTRY, settings)
    async with in_process_worker(settings, REGISTRY, QUEUE, 1):
        job_id = (await client.enqueue("effect-progress", "progress-1", {})).job_id
        job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=10,
                               what="the job to complete")
    assert job.result == {"ran": True}
    assert job.progress is not None and job.progress.fraction == 0.5


async def test_a_blocking_side_effect_runs_at_most_once_across_attempts(
    settings: Settings, redis: Redis, record: Record,
) -> None:
    loop_thread = threading.current_thread()
    client = Client(redis, REGISTRY, settings)
    async with in_process_worker(settings, REGISTRY, QUEUE, 1):
        job_id = (await client.enqueue("effect-once", "once-1", {})).job_id
        job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=10,
                               what="the retry to complete")
    assert job.result == {"attempt": 2} and job.attempts == 2
    assert record.ran == [True, False]  # reserved by attempt 1: the retry skips the effect
    assert len(record.effect_threads) == 1 and record.effect_threads[0] is not loop_thread


@pytest.mark.timeout(30)  # before the fix this waited for its own loop for ever
async def test_the_blocking_methods_refuse_the_event_loops_own_thread(
    settings: Settings, redis: Redis,
) -> None:
    """An async handler calling them would wait for its own loop: an error, not a hang."""
    ctx = JobContext(job_id="j", type="t", queue=QUEUE, attempt=1, max_attempts=1, worker="w",
                     token="w:1", settings=settings, log=get_logger("test"),
                     _scripts=Scripts(redis), _keys=QueueKeys(settings.key_prefix, QUEUE),
                     _loop=asyncio.get_running_loop())
    with pytest.raises(RuntimeError, match="for sync handlers"):
        ctx.side_effect_blocking("x", lambda: None)
    with pytest.raises(RuntimeError, match="for sync handlers"):
        ctx.progress_blocking(0.1)
