"""Tasks of the flow-control tests (priorities, rate limits, concurrency keys), on queues of
their own. Each appends "<jobId> <tenant>" to JOBQ_TEST_ORDER_FILE when it starts, so a test
sees the order jobs started in across every worker process."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel, Field

from jobq.context import JobContext
from jobq.flow import RateLimit
from jobq.tasks import task


class Tenant(BaseModel):
    tenant: str = "none"
    seconds: float = Field(0.0, ge=0)


def _started(ctx: JobContext, payload: Tenant) -> None:
    path = os.environ.get("JOBQ_TEST_ORDER_FILE")
    if path:
        with open(path, "a") as out:
            out.write(f"{ctx.job_id} {payload.tenant}\n")


async def _run(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    _started(ctx, payload)
    await asyncio.sleep(payload.seconds)
    return {"tenant": payload.tenant}


@task("prio-record", queue="prio-queue", payload=Tenant)
async def prio_record(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    return await _run(ctx, payload)


@task("urgent-record", queue="prio-queue", payload=Tenant, priority=8)
async def urgent_record(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    return await _run(ctx, payload)


@task("queue-rated", queue="qrate-queue", payload=Tenant)
async def queue_rated(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    return await _run(ctx, payload)


@task("tenant-rated", queue="krate-queue", payload=Tenant, rate_limit=RateLimit(3, 1.0),
      rate_key=lambda p: None if p.tenant == "free" else p.tenant)
async def tenant_rated(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    return await _run(ctx, payload)


@task("tenant-capped", queue="conc-queue", payload=Tenant, attempts=5, concurrency_limit=2,
      concurrency_key=lambda p: p.tenant)
async def tenant_capped(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    return await _run(ctx, payload)


class TenantAndRate(BaseModel):
    tenant: str = "none"
    rate: str = "none"


@task("tenant-single", queue="single-queue", payload=Tenant, concurrency_limit=1,
      concurrency_key=lambda p: p.tenant)
async def tenant_single(ctx: JobContext, payload: Tenant) -> dict[str, Any]:
    return await _run(ctx, payload)


@task("tenant-single-rated", queue="single-queue", payload=TenantAndRate, concurrency_limit=1,
      concurrency_key=lambda p: p.tenant, rate_limit=RateLimit(1, 600.0),
      rate_key=lambda p: p.rate)
async def tenant_single_rated(ctx: JobContext, payload: TenantAndRate) -> dict[str, Any]:
    return {"tenant": payload.tenant}
