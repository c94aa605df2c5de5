"""Tasks that only tests register (``JOBQ_TASKS=jobq.demo,testtasks``)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from pydantic import BaseModel, Field

from jobq.context import JobContext
from jobq.errors import PermanentError, RetryLater
from jobq.jobs import Backoff
from jobq.tasks import task


class Empty(BaseModel):
    n: int = 0


class Sleep(BaseModel):
    seconds: float = Field(ge=0)
    retrySeconds: float = Field(0, ge=0)


class Hog(BaseModel):
    seconds: float = Field(ge=0)


@task("noop", queue="bench-queue", payload=Empty)
async def noop(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    return {"n": payload.n}


@task("sleep", queue="report-queue", payload=Sleep, attempts=3,
      backoff=Backoff(delaySeconds=0.2))
async def sleep(ctx: JobContext, payload: Sleep) -> dict[str, Any]:
    seconds = payload.seconds if ctx.attempt == 1 else payload.retrySeconds
    await asyncio.sleep(seconds)
    return {"slept": seconds, "attempt": ctx.attempt}


@task("effect-then-hang", queue="email-queue", payload=Sleep, attempts=3,
      backoff=Backoff(delaySeconds=0.2))
async def effect_then_hang(ctx: JobContext, payload: Sleep) -> dict[str, Any]:
    """Reserves and runs a side effect (a line in ``$JOBQ_TEST_EFFECTS_FILE``), then hangs on
    its first attempt (to be killed)."""
    effects = os.environ["JOBQ_TEST_EFFECTS_FILE"]
    ran = await ctx.side_effect("count", lambda: _append(effects, ctx.job_id))
    if ctx.attempt == 1:
        await asyncio.sleep(payload.seconds)
    return {"ran": ran}


@task("hog", queue="report-queue", payload=Hog, attempts=1)
async def hog(ctx: JobContext, payload: Hog) -> dict[str, Any]:
    """Blocks the event loop (a badly written handler): the lease must survive it."""
    time.sleep(payload.seconds)
    return {"hogged": payload.seconds}


@task("always-permanent", queue="report-queue", payload=Empty, attempts=5)
async def always_permanent(ctx: JobContext, payload: Empty) -> None:
    raise PermanentError("this can never work")


def _append(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")
    os.sync()


@task("sync-sleep", queue="report-queue", payload=Sleep, attempts=2)
def sync_sleep(ctx: JobContext, payload: Sleep) -> dict[str, Any]:
    """A sync handler (runs in a thread, cannot be cancelled)."""
    time.sleep(payload.seconds if ctx.attempt == 1 else payload.retrySeconds)
    return {"attempt": ctx.attempt}


@task("too-slow", queue="report-queue", payload=Sleep, attempts=2,
      backoff=Backoff(delaySeconds=0.1), timeout_s=0.5)
async def too_slow(ctx: JobContext, payload: Sleep) -> dict[str, Any]:
    """Always outlives its 0.5 s timeout."""
    await asyncio.sleep(payload.seconds)
    return {}


@task("retry-later", queue="report-queue", payload=Empty, attempts=3)
async def retry_later(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    """Asks for a retry after 0.3 s (not the task's 5 s backoff) on its first attempt."""
    if ctx.attempt == 1:
        raise RetryLater("upstream busy", delay_s=0.3)
    return {"attempt": ctx.attempt}


class Spin(BaseModel):
    seconds: float = Field(ge=0)


@task("sync-until-cancelled", queue="report-queue", payload=Spin, attempts=2)
def sync_until_cancelled(ctx: JobContext, payload: Spin) -> dict[str, Any]:
    """A sync handler that checks ``ctx.cancelled`` and stops when asked (or after a while)."""
    deadline = time.monotonic() + payload.seconds
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"sawCancel": ctx.cancelled}


class Steps(BaseModel):
    steps: int = Field(ge=1, le=100)
    seconds: float = Field(0.05, ge=0)


@task("steps", queue="report-queue", payload=Steps, attempts=1)
async def steps(ctx: JobContext, payload: Steps) -> dict[str, Any]:
    """Reports its progress after each of its steps (``ctx.progress``)."""
    for n in range(1, payload.steps + 1):
        await asyncio.sleep(payload.seconds)
        await ctx.progress(n / payload.steps, f"step {n} of {payload.steps}")
    return {"steps": payload.steps}
