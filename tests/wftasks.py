"""Tasks of the workflow tests (tests/test_workflows*.py): each run appends a line
``<name> <attempt>`` to ``$JOBQ_TEST_EFFECTS_FILE``, so a test counts how often each node ran."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel, Field

from jobq.context import JobContext
from jobq.errors import PermanentError, RetryLater
from jobq.jobs import Backoff
from jobq.tasks import task


class Step(BaseModel):
    name: str
    add: int = 0
    failUntil: int = 0  # attempts below this one fail (retryable)
    sleep: float = Field(0, ge=0)


def _record(ctx: JobContext, name: str) -> None:
    with open(os.environ["JOBQ_TEST_EFFECTS_FILE"], "a") as out:
        out.write(f"{name} {ctx.attempt}\n")


async def _step(ctx: JobContext, p: Step) -> dict[str, Any]:
    _record(ctx, p.name)
    inputs = await ctx.workflow_inputs()
    if p.sleep:
        await asyncio.sleep(p.sleep)
    if ctx.attempt < p.failUntil:
        raise RetryLater(f"{p.name}: attempt {ctx.attempt} fails on purpose", delay_s=0.05)
    results = inputs.results if inputs else {}
    value = p.add + sum(int(r["value"]) for r in results.values() if isinstance(r, dict))
    return {"name": p.name, "value": value, "inputs": results,
            "errors": inputs.errors if inputs else {}}


@task("wf-a", queue="wf-a", payload=Step, attempts=4, backoff=Backoff(delaySeconds=0.05))
async def wf_a(ctx: JobContext, p: Step) -> dict[str, Any]:
    return await _step(ctx, p)


@task("wf-b", queue="wf-b", payload=Step, attempts=4, backoff=Backoff(delaySeconds=0.05))
async def wf_b(ctx: JobContext, p: Step) -> dict[str, Any]:
    return await _step(ctx, p)


@task("wf-fail", queue="wf-b", payload=Step, attempts=1)
async def wf_fail(ctx: JobContext, p: Step) -> None:
    _record(ctx, p.name)
    raise PermanentError(f"{p.name} cannot work")


@task("wf-sync", queue="wf-a", payload=Step, attempts=1)
def wf_sync(ctx: JobContext, p: Step) -> dict[str, Any]:
    _record(ctx, p.name)
    inputs = ctx.workflow_inputs_blocking()
    return {"name": p.name, "value": p.add, "inputs": inputs.results if inputs else {}}
