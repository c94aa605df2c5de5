"""The flow-control benchmark's tasks (``JOBQ_TASKS=keyedtasks``): the same no-op with and
without a concurrency key. Kept apart from benchtasks, which a baseline commit must import."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.tasks import task

KEYS = 100  # concurrency keys the keyed jobs spread over (n % KEYS)
LIMIT = 2  # jobs of one key running at once


class Numbered(BaseModel):
    n: int = 0


@task("free", queue="free-queue", payload=Numbered)
async def free(ctx: JobContext, payload: Numbered) -> dict[str, Any]:
    return {"n": payload.n}


@task("keyed", queue="keyed-queue", payload=Numbered, concurrency_limit=LIMIT,
      concurrency_key=lambda p: f"tenant-{p.n % KEYS}")
async def keyed(ctx: JobContext, payload: Numbered) -> dict[str, Any]:
    return {"n": payload.n}


@task("ranked", queue="ranked-queue", payload=Numbered)
async def ranked(ctx: JobContext, payload: Numbered) -> dict[str, Any]:
    return {"n": payload.n}
