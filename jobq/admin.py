"""Operator actions on queues and jobs: pause and resume a queue, cancel a job, discard a DLQ
entry; and the views behind them: live workers and per-minute throughput.

Shared by the API and the CLI (whose ``--json`` prints what the API answers), so both answer
alike. Each state change is one script or one command; none is check-then-set from Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jobq import keys
from jobq.client import Client, add_count_commands, counts_row
from jobq.connection import redis_now_ms, result_of
from jobq.errors import NotFound, UnknownQueue
from jobq.jobs import iso, loads
from jobq.logs import get_logger
from jobq.models import DeferredModel

log = get_logger("jobq.admin")


class QueuePause(DeferredModel):
    """A queue's paused flag after ``pause`` or ``resume``."""

    queue: str
    paused: bool


class JobCancel(DeferredModel):
    """``cancelled``: the job will never run. ``active``: it is running; its worker cancels the
    handler within a fraction of a second and the attempt ends ``cancelled``."""

    jobId: str
    state: Literal["cancelled", "active"]
    cancelRequested: bool


class WorkerQueue(DeferredModel):
    queue: str
    concurrency: int
    inFlight: int


class WorkerInfo(DeferredModel):
    """One worker process as its heartbeats describe it."""

    workerId: str
    pod: str | None
    pid: int | None
    queues: list[WorkerQueue]
    concurrency: int
    inFlight: int
    lastSeen: str | None
    stale: bool


class WorkerList(DeferredModel):
    """``GET /workers``: every worker with a heartbeat; ``stale`` after three missed beats."""

    workers: list[WorkerInfo]


class ThroughputMinute(DeferredModel):
    minute: str
    completed: int
    failed: int


class Throughput(DeferredModel):
    """Jobs completed and dead-lettered per minute over the last hour, oldest first."""

    queue: str
    minutes: list[ThroughputMinute]


async def known_queue(client: Client, queue: str) -> str:
    """``queue`` when a job was ever created in it or a loaded task names it."""
    if queue not in await client.queues():
        raise UnknownQueue(f"unknown queue {queue!r}")
    return queue


async def set_paused(client: Client, queue: str, paused: bool, *, who: str) -> QueuePause:
    """Pause or resume a queue. Workers find the flag at their next claim (one command)."""
    q = client.keys(await known_queue(client, queue))
    if paused:
        await client.redis.set(q.paused, "1")
    else:
        await client.redis.delete(q.paused)
    log.info("queue.paused" if paused else "queue.resumed", queue=queue, by=who)
    return QueuePause(queue=queue, paused=paused)


async def cancel_job(client: Client, job_id: str, *, who: str) -> JobCancel:
    """Cancel a job wherever it is: at once when waiting or delayed, through its worker when
    running. NotFound, JobExpired or JobFinished otherwise."""
    job = await client.get_job(job_id)
    settings = client.settings
    now = await client.scripts.cancel(client.keys(job.queue), job_id, settings.completed_keep,
                                      settings.completed_max_age_s * 1000)
    log.info("job.cancel", jobId=job_id, queue=job.queue, immediate=now, by=who)
    return JobCancel(jobId=job_id, state="cancelled" if now else "active", cancelRequested=True)


async def discard_dlq_entry(client: Client, dlq_id: str, *, who: str) -> None:
    """Delete one DLQ entry on purpose (logged): it can no longer be replayed."""
    queue = keys.queue_of_dlq_id(dlq_id)
    if queue is None:
        raise NotFound(f"no DLQ entry {dlq_id}")
    await client.scripts.discard(client.keys(queue), dlq_id)
    log.warning("dlq.discarded", dlqId=dlq_id, queue=queue, by=who)


async def list_workers(client: Client) -> WorkerList:
    """Workers from the per-queue heartbeat hashes: Redis's clock, then every queue's hash at
    once (one command per queue, each in its queue's slot)."""
    queues = await client.queues()
    now = await redis_now_ms(client.redis)
    beats = await asyncio.gather(*(result_of(client.redis.hgetall(client.keys(q).workers))
                                   for q in queues))
    return workers_from_beats(queues, beats, now)


def workers_from_beats(queues: list[str], beats: Sequence[Mapping[Any, Any]],
                       now_ms: int) -> WorkerList:
    """One WorkerInfo per worker id found in the queues' heartbeat hashes; stale ones marked."""
    found: dict[str, WorkerInfo] = {}
    newest: dict[str, int] = {}  # worker id -> its latest heartbeat (ms, Redis's clock)
    for queue, per_queue in zip(queues, beats, strict=True):
        for worker_id, raw in per_queue.items():
            beat = loads(raw)
            info = found.setdefault(worker_id, WorkerInfo(
                workerId=worker_id, pod=beat.get("pod"), pid=beat.get("pid"), queues=[],
                concurrency=0, inFlight=0, lastSeen=None, stale=False))
            info.queues.append(WorkerQueue(queue=queue, concurrency=int(beat["concurrency"]),
                                           inFlight=int(beat["inflight"])))
            info.concurrency += int(beat["concurrency"])
            info.inFlight += int(beat["inflight"])
            newest[worker_id] = max(newest.get(worker_id, 0), int(beat.get("seenAt", 0)))
    for worker_id, info in found.items():
        info.lastSeen = iso(newest[worker_id])
        info.stale = now_ms - newest[worker_id] > keys.HEARTBEAT_LATE_S * 1000
    return WorkerList(workers=sorted(found.values(), key=lambda w: w.workerId))


async def throughput(client: Client, queue: str) -> Throughput:
    """The last hour's per-minute counters of ``queue`` (any API replica can read them)."""
    q = client.keys(await known_queue(client, queue))
    now, completed, failed = await client.scripts.throughput(q, keys.THROUGHPUT_WINDOW_MIN)
    this_minute = now // 60_000
    first = this_minute - len(completed) + 1
    return Throughput(queue=queue, minutes=[
        ThroughputMinute(minute=iso((first + n) * 60_000) or "", completed=c, failed=f)
        for n, (c, f) in enumerate(zip(completed, failed, strict=True))
    ])


@dataclass(frozen=True, slots=True)
class QueueOverview:
    """One queue's row of the dashboard's overview: counts and the last hour per minute."""

    queue: str
    counts: dict[str, int | bool]
    completed: list[int]  # per minute, oldest first
    failed: list[int]


@dataclass(frozen=True, slots=True)
class Overview:
    queues: list[QueueOverview]
    workers: list[WorkerInfo]


async def overview(client: Client) -> Overview:
    """Every queue's counts, hour of throughput and heartbeats, and the workers they show.

    Two round trips per queue (a pipeline of its counts and heartbeats; the throughput script),
    every queue at once: the page's time is one queue's, not the sum. Neither mixes two queues,
    so each stays in one slot on Redis Cluster.
    """
    queues = await client.queues()

    async def one(queue: str) -> tuple[QueueOverview, Mapping[Any, Any], int]:
        q = client.keys(queue)

        async def counts_and_beats() -> tuple[dict[str, int | bool], Mapping[Any, Any]]:
            async with client.redis.pipeline(transaction=False) as pipe:
                add_count_commands(pipe, q)
                pipe.hgetall(q.workers)
                raw = await pipe.execute()
            return counts_row(raw), raw[-1]

        (counts, beats), (now, completed, failed) = await asyncio.gather(
            counts_and_beats(), client.scripts.throughput(q, keys.THROUGHPUT_WINDOW_MIN))
        return QueueOverview(queue, counts, completed, failed), beats, now

    rows = await asyncio.gather(*(one(queue) for queue in queues))
    now = max((row[2] for row in rows), default=0)
    workers = workers_from_beats(queues, [row[1] for row in rows], now)
    return Overview(queues=[row[0] for row in rows], workers=workers.workers)
