"""The same job twice in one worker (review of d0f8ead, finding 6): an attempt whose lease was
lost keeps running while the job's retry is claimed by the same worker. Each attempt must keep
its own lease, context and slot: the first one's end must not drop the second's lease from the
renewal table nor crash the second's end (which leaked the slot for good). And the renewer,
finding the first lease lost, stops that attempt's handler."""

from __future__ import annotations

import asyncio
from typing import Any

from fixtures import eventually, job_in
from inprocess import InProcessWorker, in_process_worker
from pydantic import BaseModel

from jobq.client import Client
from jobq.connection import Redis
from jobq.context import JobContext
from jobq.jobs import Backoff, State
from jobq.keys import QueueKeys
from jobq.settings import Settings
from jobq.tasks import Registry, task
from jobq.worker.sweeper import Sweeper

QUEUE = "twice-queue"


class Nothing(BaseModel):
    pass


class Gates:
    """Per attempt: set when its handler started, and the gate that lets it return."""

    def __init__(self) -> None:
        self.started = {1: asyncio.Event(), 2: asyncio.Event()}
        self.release = {1: asyncio.Event(), 2: asyncio.Event()}
        self.cancelled: list[int] = []  # attempts whose handler was cancelled
        self.saw_flag: list[int] = []  # attempts whose ctx.cancelled was set when cancelled


GATES: Gates | None = None


@task("hold-twice", queue=QUEUE, payload=Nothing, attempts=3, backoff=Backoff(delaySeconds=0))
async def hold(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    """Runs until the test releases this attempt."""
    assert GATES is not None
    GATES.started[ctx.attempt].set()
    try:
        await GATES.release[ctx.attempt].wait()
    except asyncio.CancelledError:
        GATES.cancelled.append(ctx.attempt)
        if ctx.cancelled:
            GATES.saw_flag.append(ctx.attempt)
        raise
    return {"attempt": ctx.attempt}


REGISTRY = Registry([hold])


async def lose_lease(worker: InProcessWorker, redis: Redis, keys: QueueKeys, job_id: str) -> None:
    """Make the job's lease expire now (as after a long pause of the worker), and let a real
    sweep take it back and end the attempt ``lost``; the retry is due at once. Repeated if a
    renewal moved the deadline out again in between."""
    lost_before = await redis.hget(keys.job(job_id), "lost")

    async def swept() -> bool:
        await redis.zadd(keys.active, {job_id: 0}, xx=True)
        await Sweeper(worker.runner).sweep()
        return await redis.hget(keys.job(job_id), "lost") != lost_before

    await eventually(swept, timeout=10, what="the sweep to take the lease back")


async def test_a_lost_attempt_and_its_retry_in_one_worker_keep_their_own_lease_and_slot(
    settings: Settings, redis: Redis,
) -> None:
    global GATES
    GATES = gates = Gates()
    client = Client(redis, REGISTRY, settings)
    keys = QueueKeys(settings.key_prefix, QUEUE)
    # No lease thread: the first lease is only lost when the test says so.
    async with in_process_worker(settings, REGISTRY, QUEUE, 2) as worker:
        job_id = (await client.enqueue("hold-twice", "twice-1", {})).job_id
        await asyncio.wait_for(gates.started[1].wait(), 10)
        await lose_lease(worker, redis, keys, job_id)
        # The retry is claimed by the same worker (it has a free slot) while attempt 1 runs.
        await asyncio.wait_for(gates.started[2].wait(), 10)
        second_token = await redis.hget(keys.job(job_id), "token")
        assert second_token is not None and worker.busy_slots() == 2

        gates.release[1].set()  # the lost attempt ends first; its completion is refused

        async def first_ended() -> bool:
            lane = worker.runner.lanes[0]
            return lane.running == 1 and lane.finisher.pending == 0

        await eventually(first_ended, timeout=10, what="the first attempt to end")
        # The second attempt's lease is still renewed (it was dropped from the table).
        assert (job_id, second_token) in worker.leases.snapshot().get(QUEUE, [])
        assert (await client.get_job(job_id)).state is State.ACTIVE

        gates.release[2].set()
        job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=10,
                               what="the retry to complete")
        assert job.result == {"attempt": 2}

        # Before the fix, the second attempt's end raised KeyError: one slot leaked for good.
        await worker.all_slots_free()
        assert worker.free_slots() == 2
        assert worker.leases.snapshot() == {}
        assert worker.loop_errors == []
    assert gates.cancelled == []


async def test_a_lost_lease_stops_the_handler_of_that_attempt_only(
    settings: Settings, redis: Redis,
) -> None:
    global GATES
    GATES = gates = Gates()
    client = Client(redis, REGISTRY, settings)
    keys = QueueKeys(settings.key_prefix, QUEUE)
    async with in_process_worker(settings, REGISTRY, QUEUE, 2, renew=True) as worker:
        job_id = (await client.enqueue("hold-twice", "twice-2", {})).job_id
        await asyncio.wait_for(gates.started[1].wait(), 10)
        first_token = await redis.hget(keys.job(job_id), "token")
        await lose_lease(worker, redis, keys, job_id)
        await asyncio.wait_for(gates.started[2].wait(), 10)

        # The next renewal (every lease/3) finds attempt 1's lease lost and stops its handler.
        async def first_stopped() -> bool:
            return gates.cancelled == [1] and worker.busy_slots() == 1

        await eventually(first_stopped, timeout=3 * settings.lease_s,
                         what="the lost attempt's handler to be cancelled")
        assert gates.saw_flag == [1]
        second_token = await redis.hget(keys.job(job_id), "token")
        assert worker.leases.snapshot() == {QUEUE: [(job_id, second_token)]}
        assert first_token != second_token
        job = await client.get_job(job_id)  # nothing was written for the stopped attempt
        assert job.state is State.ACTIVE and [h.outcome for h in job.history][:1] == ["lost"]

        gates.release[2].set()
        await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=10,
                         what="the retry to complete")

        await worker.all_slots_free()
        assert worker.loop_errors == []
    assert gates.cancelled == [1]
