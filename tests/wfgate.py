"""A task of the workflow reopen tests (tests/test_workflow_reopen.py): it fails for good
until the file its payload names exists, then succeeds (after ``sleep`` seconds), so a test
decides when a node's replay or retry may succeed. Each run appends ``<name> <attempt>`` to
``$JOBQ_TEST_EFFECTS_FILE``, like the tasks of tests/wftasks.py."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel, Field

from jobq.context import JobContext
from jobq.errors import PermanentError
from jobq.tasks import task


class Gate(BaseModel):
    name: str
    gate: str  # a path: the task fails while no file is there
    add: int = 0
    sleep: float = Field(0, ge=0)


@task("wf-gate", queue="wf-b", payload=Gate, attempts=1)
async def wf_gate(ctx: JobContext, p: Gate) -> dict[str, Any]:
    with open(os.environ["JOBQ_TEST_EFFECTS_FILE"], "a") as out:
        out.write(f"{p.name} {ctx.attempt}\n")
    if not os.path.exists(p.gate):
        raise PermanentError(f"{p.name}: gate closed")
    if p.sleep:
        await asyncio.sleep(p.sleep)
    inputs = await ctx.workflow_inputs()
    return {"name": p.name, "value": p.add, "inputs": inputs.results if inputs else {},
            "errors": inputs.errors if inputs else {}}
