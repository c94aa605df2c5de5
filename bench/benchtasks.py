"""The no-op task the benchmarks drain (``JOBQ_TASKS=benchtasks`` with bench/ on PYTHONPATH)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.tasks import task


class Empty(BaseModel):
    n: int = 0


@task("noop", queue="bench-queue", payload=Empty)
async def noop(ctx: JobContext, payload: Empty) -> dict[str, Any]:
    return {"n": payload.n}
