"""jobq.hooks: middleware around handlers (async and sync), a failing hook never fails the job,
no wrapping when none is registered, and the worker lifespan's state in ctx.state."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from jobq import JobContext, PermanentError, task
from jobq.hooks import JobEnd, Middleware, worker_lifespan
from jobq.tasks import Registry
from jobq.testing import JobqEnv

pytestmark = pytest.mark.any_server


class Item(BaseModel):
    n: int


@task("hook-async", queue="hooks", payload=Item, attempts=1)
async def run_async(ctx: JobContext, payload: Item) -> dict[str, Any]:
    if payload.n < 0:
        raise PermanentError(f"negative {payload.n}")
    return {"n": payload.n, "state": ctx.state}


@task("hook-sync", queue="hooks", payload=Item, attempts=1)
def run_sync(ctx: JobContext, payload: Item) -> dict[str, Any]:
    if payload.n < 0:
        raise ValueError(f"negative {payload.n}")
    return {"n": payload.n, "thread": threading.current_thread().name != "MainThread"}


class Recorder(Middleware):
    """Async hooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    async def on_job_start(self, ctx: JobContext) -> None:
        self.seen.append(("start", ctx.type, ctx.attempt))

    async def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        assert error.__traceback__ is not None  # what a reporter sends
        self.seen.append(("failure", ctx.type, str(error)))

    async def on_job_end(self, ctx: JobContext, end: JobEnd) -> None:
        self.seen.append(("end", ctx.type, end.outcome))


class SyncRecorder(Middleware):
    """Plain hooks; only on_failure overridden."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def on_failure(self, ctx: JobContext, error: BaseException) -> None:
        self.threads.append(threading.current_thread().name)


class Broken(Middleware):
    def on_job_start(self, ctx: JobContext) -> None:
        raise RuntimeError("reporter down")

    async def on_job_end(self, ctx: JobContext, end: JobEnd) -> None:
        raise RuntimeError("reporter down")


async def test_hooks_see_start_failure_and_end_of_async_and_sync_handlers(
        jobq_server: Any) -> None:
    recorder, plain = Recorder(), SyncRecorder()
    registry = Registry([run_async, run_sync], middleware=[recorder, plain])
    async with JobqEnv.start(jobq_server.url, registry) as env:
        for kind in ("hook-async", "hook-sync"):
            await env.enqueue(kind, f"{kind}-ok", {"n": 1})
            await env.enqueue(kind, f"{kind}-bad", {"n": -1})
        await env.drain(fail_fast=False)
    by_type = {kind: sorted((e for e in recorder.seen if e[1] == kind), key=str)
               for kind in ("hook-async", "hook-sync")}
    assert by_type["hook-async"] == sorted([
        ("start", "hook-async", 1), ("start", "hook-async", 1), ("end", "hook-async", "completed"),
        ("failure", "hook-async", "negative -1"), ("end", "hook-async", "failed")], key=str)
    assert by_type["hook-sync"] == sorted([
        ("start", "hook-sync", 1), ("start", "hook-sync", 1), ("end", "hook-sync", "completed"),
        ("failure", "hook-sync", "negative -1"), ("end", "hook-sync", "failed")], key=str)
    # A sync handler's hooks run in its thread (a reporter's scope is there), async ones' on the loop.
    assert sorted(name == "MainThread" for name in plain.threads) == [False, True]


async def test_a_hook_that_raises_never_fails_the_job(jobq_server: Any) -> None:
    registry = Registry([run_async, run_sync], middleware=[Broken()])
    async with JobqEnv.start(jobq_server.url, registry) as env:
        jobs = [await env.enqueue(kind, kind, {"n": 2}) for kind in ("hook-async", "hook-sync")]
        await env.drain()
        assert [(await env.client.get_job(j.job_id)).state.value for j in jobs] == [
            "completed", "completed"]


def test_no_middleware_no_wrapping() -> None:
    """The per-job path is the handler itself when nothing is registered."""
    assert Registry([run_async]).get("hook-async") is run_async
    assert Registry([run_async], middleware=[Recorder()]).get("hook-async") is not run_async


async def test_the_worker_lifespan_is_ctx_state_entered_once(jobq_server: Any) -> None:
    events: list[str] = []

    @worker_lifespan
    async def resources() -> AsyncIterator[str]:
        events.append("enter")
        yield "pool-1"
        events.append("exit")

    registry = Registry([run_async], lifespan=resources)
    async with JobqEnv.start(jobq_server.url, registry) as env:
        handles = [await env.enqueue("hook-async", f"s{i}", {"n": i}) for i in range(3)]
        await env.drain()
        results = [(await env.client.get_job(h.job_id)).result for h in handles]
        assert events == ["enter"]
    assert [r["state"] for r in results] == ["pool-1"] * 3
    assert events == ["enter", "exit"]
