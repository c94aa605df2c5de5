"""The tasks the benchmarks drain (``JOBQ_TASKS=benchtasks`` with bench/ on PYTHONPATH)."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from jobq.context import JobContext
from jobq.tasks import task

_counter: Redis | None = None
_COUNTER_KEY = os.environ.get("BENCH_COUNTER_KEY", "bench:counter")


class Empty(BaseModel):
    n: int = 0


@task("noop", queue="bench-queue", payload=Empty)
async def noop(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    return {"n": payload.n}


@task("incr", queue="incr-queue", payload=Empty)
async def incr(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    """A realistic body: one call over the job's own client (here one INCR, as BullMQ's)."""
    global _counter
    if _counter is None:
        _counter = Redis.from_url(os.environ["REDIS_URL"])
    await _counter.incr(_COUNTER_KEY)
    return {"n": payload.n}


class Stamped(BaseModel):
    n: int = 0
    t: float = 0.0  # ms since the epoch when the producer enqueued it


_WAITS_KEY = os.environ.get("BENCH_WAITS_KEY", "bench:waits")


@task("stamp", queue="incr-queue", payload=Stamped)
async def stamp(ctx: JobContext, payload: Stamped) -> dict[str, Any]:
    """The realistic body for the wait rows: its one call records how long the job waited
    from its enqueue to its start (ms), as bench/bullmq/bench.js's "waits=" body does."""
    global _counter
    waited = time.time() * 1000 - payload.t
    if _counter is None:
        _counter = Redis.from_url(os.environ["REDIS_URL"])
    await _counter.rpush(_WAITS_KEY, waited)
    return {"n": payload.n}


# Three queues whose hash tags fall on the three primaries of a 3-primary cluster (slots split
# evenly, as jobq.embedded_cluster does): bench/cluster.py drains them side by side.
CLUSTER_QUEUES = ("bench-2", "bench-3", "bench-1")  # slots 4091, 8154, 16280


@task("noop-2", queue="bench-2", payload=Empty)
async def noop_2(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    return {"n": payload.n}


@task("noop-3", queue="bench-3", payload=Empty)
async def noop_3(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    return {"n": payload.n}


@task("noop-1", queue="bench-1", payload=Empty)
async def noop_1(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    return {"n": payload.n}


class Burn(BaseModel):
    loops: int = 0


def burn(loops: int) -> int:
    """Pure-Python CPU work (bench/executors.py calibrates ``loops`` to 20 ms): holds the GIL."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


@task("cpu", queue="cpu-queue", payload=Burn)
def cpu(ctx: JobContext, payload: Burn) -> dict[str, Any]:
    """A CPU-bound sync job; its executor is the worker's ``--executor``."""
    return {"total": burn(payload.loops)}
