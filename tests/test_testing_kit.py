"""jobq.testing: a handler called directly (level 1) and the in-process pipeline (level 2)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, Field

from jobq import JobContext, RetryLater, task
from jobq.errors import InvalidPayload
from jobq.testing import JobqEnv, run_task

pytestmark = pytest.mark.any_server


class Order(BaseModel):
    orderId: str
    at: datetime
    note: str = Field("", exclude=True)  # never sent: a handler must not see it


class Shipped(BaseModel):
    orderId: str
    at: datetime
    note: str


@task("kit-ship", queue="kit", payload=Order, result=Shipped)
async def ship(ctx: JobContext, payload: Order) -> Shipped:
    await ctx.progress(0.5, "packed")
    await ctx.side_effect("label", lambda: None)
    await ctx.side_effect("label", lambda: None)  # the same name: not run again
    return Shipped(orderId=payload.orderId, at=payload.at, note=payload.note)


@task("kit-boom", queue="kit", payload=Order, attempts=2)
async def boom(ctx: JobContext, payload: Order) -> None:
    raise KeyError(f"no warehouse for {payload.orderId}")


@task("kit-flaky", queue="kit", payload=Order, attempts=3)
def flaky(ctx: JobContext, payload: Order) -> dict[str, int]:
    if ctx.attempt == 1:
        raise RetryLater("try later", delay_s=3600)
    return {"attempt": ctx.attempt}


@task("kit-poll", queue="kit", payload=Order)
def poll(ctx: JobContext, payload: Order) -> dict[str, bool]:
    deadline = time.monotonic() + 5
    while not ctx.cancelled and time.monotonic() < deadline:
        ctx.progress_blocking(0.1)
    return {"stopped": ctx.cancelled}


@task("kit-set", queue="kit", payload=Order)
async def returns_a_set(ctx: JobContext, payload: Order) -> object:
    return {payload.orderId}  # no JSON: fails in production, so here too


AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_run_task_round_trips_payload_and_result_through_their_models() -> None:
    run = await run_task(ship, Order(orderId="o-1", at=AT, note="kept local"))
    assert run.result == Shipped(orderId="o-1", at=AT, note="")  # note never left the producer
    assert run.result_json == '{"orderId":"o-1","at":"2026-01-02T03:04:05Z","note":""}'
    assert run.side_effects == ["label"]
    assert run.progress == [(0.5, "packed")]
    retried = await run_task(ship, Order(orderId="o-1", at=AT), attempt=2, reserved={"label"})
    assert retried.side_effects == []


async def test_run_task_keeps_the_error_a_production_run_would_have() -> None:
    failed = await run_task(returns_a_set, Order(orderId="o-2", at=AT))
    assert isinstance(failed.exception, TypeError)
    with pytest.raises(TypeError):
        failed.result  # noqa: B018
    with pytest.raises(InvalidPayload):  # what Client.enqueue would refuse
        await run_task(ship, Order.model_construct(orderId=7, at=AT))  # type: ignore[arg-type]


async def test_run_task_cancellation_is_observable_by_a_sync_handler() -> None:
    run = await run_task(poll, Order(orderId="o-3", at=AT),
                         on_context=lambda ctx: ctx.cancel())
    assert run.result == {"stopped": True}


@pytest.fixture
def jobq_tasks() -> list[object]:
    return [ship, boom, flaky]


async def test_env_runs_a_typed_job_through_the_real_worker(jobq_env: JobqEnv) -> None:
    handle = await jobq_env.enqueue(ship, "o-4", Order(orderId="o-4", at=AT))
    await jobq_env.drain()
    assert await handle.result(timeout=5) == Shipped(orderId="o-4", at=AT, note="")
    [done] = await jobq_env.jobs("completed")
    assert done.jobId == handle.job_id and done.progress is not None


async def test_env_drain_re_raises_the_first_handler_error(jobq_env: JobqEnv) -> None:
    await jobq_env.enqueue(boom, "o-5", Order(orderId="o-5", at=AT))
    with pytest.raises(KeyError, match="no warehouse for o-5"):
        await jobq_env.drain()


async def test_env_dead_letters_and_makes_delayed_jobs_due(jobq_env: JobqEnv) -> None:
    await jobq_env.enqueue("kit-boom", "o-6", {"orderId": "o-6", "at": AT.isoformat()})
    flaky_job = await jobq_env.enqueue(flaky, "o-7", Order(orderId="o-7", at=AT))
    await jobq_env.drain(fail_fast=False, delayed=True)  # retries run at once, not in 1 h
    [entry] = await jobq_env.dlq()
    assert entry.type == "kit-boom" and "no warehouse for o-6" in (entry.failedReason or "")
    assert [j.type for j in await jobq_env.jobs("failed")] == ["kit-boom"]
    assert await flaky_job.result(timeout=5) == {"attempt": 2}
    later = await jobq_env.enqueue(ship, "o-8", Order(orderId="o-8", at=AT), delay_s=3600)
    await jobq_env.drain()
    assert [j.jobId for j in await jobq_env.jobs("delayed")] == [later.job_id]
    assert await jobq_env.run_delayed_now() == 1
    await jobq_env.drain()
    assert (await later.result(timeout=5)).orderId == "o-8"
