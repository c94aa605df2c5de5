"""Tasks of the tracing tests (R25): registered with ``JOBQ_TASKS=...,tracetasks``."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from jobq.context import JobContext
from jobq.errors import PermanentError
from jobq.jobs import Backoff
from jobq.tasks import task

QUEUE = "trace-queue"
NOW = Backoff(type="fixed", delaySeconds=0)


class Empty(BaseModel):
    n: int = 0


class Nap(BaseModel):
    seconds: float = Field(ge=0)
    n: int = 0


@task("trace-flaky", queue=QUEUE, payload=Empty, attempts=3, backoff=NOW)
async def flaky(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    """Fails its first two attempts, then completes: three process spans."""
    if ctx.attempt < 3:
        raise ValueError(f"attempt {ctx.attempt} fails")
    return {"attempt": ctx.attempt}


@task("trace-child", queue=QUEUE, payload=Empty, trace_propagation="child")
async def child(ctx: JobContext, payload: Empty) -> None:
    """Its attempts' spans are children of the creation context (a per-task override)."""


@task("trace-doomed", queue=QUEUE, payload=Empty, attempts=1)
async def doomed(ctx: JobContext, payload: Empty) -> None:
    raise PermanentError("never works")


@task("trace-nap", queue=QUEUE, payload=Nap, attempts=1, trace_propagation="child")
async def nap(ctx: JobContext, payload: Nap) -> dict[str, Any]:
    """Its attempts join the trace of the request that created it (a batch: one trace)."""
    await asyncio.sleep(payload.seconds)
    return {"n": payload.n}
