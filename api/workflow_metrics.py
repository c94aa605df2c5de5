"""The workflow series of the API's /metrics: workflows by state and each queue's outbox lag
(entries not yet applied to their workflows, and how old the oldest is), read at scrape time
and shared by the scrapes of one second (like the queue depths).

Bounded per scrape: the states of the newest STATE_SAMPLE workflows kept (one HGET each), and
per known queue a ZCARD, the OLDEST_LOOK lowest entries of the due zset and their jobs'
finish times."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge

from jobq.workflows.keys import WorkflowKeys, is_workflow_id, outbox_keys, workflow_index
from jobq.workflows.views import WORKFLOW_STATES

if TYPE_CHECKING:
    from jobq.client import Client

STATE_SAMPLE = 1000  # newest workflows whose state a scrape reads
OLDEST_LOOK = 10  # lowest-scored outbox entries whose finish times a scrape reads, per queue
CACHE_S = 1.0


@dataclass(frozen=True, slots=True)
class WorkflowSnapshot:
    states: dict[str, int]
    outbox: dict[str, tuple[int, float]]  # queue -> (entries, age of the oldest in seconds)


async def _oldest_age(redis: Any, client: Client, queue: str, now_ms: int) -> tuple[int, float]:
    q = client.keys(queue)
    _, due = outbox_keys(q.base)
    async with redis.pipeline(transaction=False) as pipe:  # one slot: one round trip
        pipe.zcard(due)
        pipe.zrange(due, 0, OLDEST_LOOK - 1, withscores=True)
        count, lowest = await pipe.execute()
    if not count:
        return 0, 0.0
    # A taken entry's score is its lease's end, not its age: the job's finish time is.
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _ in lowest:
            pipe.hget(q.job(job_id), "finishedAt")
        finished = await pipe.execute()
    since = min(int(f) if f else int(score) for (_, score), f in zip(lowest, finished,
                                                                     strict=True))
    return int(count), max(0.0, (now_ms - since) / 1000)


async def read_workflows(client: Client, queues: list[str]) -> WorkflowSnapshot:
    redis: Any = client.redis
    prefix = client.settings.key_prefix
    ids = [i for i in await redis.zrevrange(workflow_index(prefix), 0, STATE_SAMPLE - 1)
           if is_workflow_id(i)]
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:  # one connection, not one per id
        for i in ids:
            pipe.hget(WorkflowKeys(prefix, i).meta, "state")
        found = await pipe.execute() if ids else []
    lags = await asyncio.gather(*(_oldest_age(redis, client, q, now_ms) for q in queues))
    states = dict.fromkeys(WORKFLOW_STATES, 0)
    for state in found:
        if state in states:
            states[state] += 1
    return WorkflowSnapshot(states, dict(zip(queues, lags, strict=True)))


class WorkflowGauges:
    """The gauges, in the API's registry, and their shared read."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.workflows = Gauge(
            "jobq_workflows", f"Workflows kept, by state (of the newest {STATE_SAMPLE}), read at "
            "scrape.", ("state",), registry=registry)
        self.outbox = Gauge(
            "jobq_workflow_outbox_entries",
            "Node outcomes in a queue's workflow outbox not yet applied to their workflows.",
            ("queue",), registry=registry)
        self.outbox_age = Gauge(
            "jobq_workflow_outbox_oldest_seconds",
            "Age of the oldest entry of a queue's workflow outbox (since its job ended); 0 "
            "when empty.", ("queue",), registry=registry)
        self._read: asyncio.Future[WorkflowSnapshot] | None = None
        self._read_at = 0.0

    def shared_read(self, client: Client, queues: list[str]) -> asyncio.Future[WorkflowSnapshot]:
        now = time.monotonic()
        if self._read is None or (self._read.done() and now - self._read_at >= CACHE_S):
            self._read_at = now
            self._read = asyncio.ensure_future(read_workflows(client, queues))
            self._read.add_done_callback(_retrieve)
        return self._read

    def clear(self) -> None:
        for gauge in (self.workflows, self.outbox, self.outbox_age):
            gauge.clear()

    def set(self, snap: WorkflowSnapshot) -> None:
        for state, n in snap.states.items():
            self.workflows.labels(state).set(n)
        self.outbox.clear()
        self.outbox_age.clear()
        for queue, (count, age) in snap.outbox.items():
            self.outbox.labels(queue).set(count)
            self.outbox_age.labels(queue).set(age)


def _retrieve(read: asyncio.Future[WorkflowSnapshot]) -> None:
    if not read.cancelled():
        read.exception()
