"""Tasks of the shutdown and Redis-restart stress tests (``JOBQ_TASKS=...,stresstasks``).

Every run of a handler appends ``<jobId> <attempt>`` to ``$JOBQ_TEST_EFFECTS_FILE``, so a test can count how
many times each job really ran, whatever Redis says about it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel, Field

from jobq.context import JobContext
from jobq.jobs import Backoff
from jobq.tasks import task


class Record(BaseModel):
    seconds: float = Field(0, ge=0)


class FinishOrFail(BaseModel):
    seconds: float = Field(ge=0)
    fail: bool = False


def _record(ctx: JobContext) -> None:
    with open(os.environ["JOBQ_TEST_EFFECTS_FILE"], "a") as out:
        out.write(f"{ctx.job_id} {ctx.attempt}\n")


@task("record", queue="stress-queue", payload=Record, attempts=3,
      backoff=Backoff(delaySeconds=0.2))
async def record(ctx: JobContext, payload: Record) -> dict[str, Any]:
    """Sleeps, then records the run; nothing awaits between the record and the return, so a
    recorded run is always a finished one."""
    if payload.seconds:
        await asyncio.sleep(payload.seconds)
    _record(ctx)
    return {"attempt": ctx.attempt}


@task("finish-or-fail", queue="stress-queue", payload=FinishOrFail, attempts=2,
      backoff=Backoff(delaySeconds=0.2))
async def finish_or_fail(ctx: JobContext, payload: FinishOrFail) -> dict[str, Any]:
    """First attempt: sleeps, records, then succeeds or (``fail``) raises; later ones succeed."""
    if ctx.attempt == 1:
        await asyncio.sleep(payload.seconds)
        _record(ctx)
        if payload.fail:
            raise ValueError("planned failure")
        return {"attempt": 1}
    _record(ctx)
    return {"attempt": ctx.attempt}
