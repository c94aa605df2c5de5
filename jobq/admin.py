"""Operator actions on queues and jobs: pause and resume a queue, cancel a job, discard a DLQ
entry; and the views behind them: live workers and per-minute throughput.

Shared by the API and the CLI (whose ``--json`` prints what the API answers), so both answer
alike. Each state change is one script or one command; none is check-then-set from Python.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from jobq import keys
from jobq.client import Client
from jobq.connection import redis_now_ms
from jobq.errors import NotFound, UnknownQueue
from jobq.jobs import iso, loads
from jobq.logs import get_logger

log = get_logger("jobq.admin")


class QueuePause(BaseModel):
    """A queue's paused flag after ``pause`` or ``resume``."""

    queue: str
    paused: bool


class JobCancel(BaseModel):
    """``cancelled``: the job will never run. ``active``: it is running; its worker cancels the
    handler at its next lease renewal and the attempt ends ``cancelled``."""

    jobId: str
    state: Literal["cancelled", "active"]
    cancelRequested: bool


class WorkerQueue(BaseModel):
    queue: str
    concurrency: int
    inFlight: int


class WorkerInfo(BaseModel):
    """One worker process as its heartbeats describe it."""

    workerId: str
    pod: str | None
    pid: int | None
    queues: list[WorkerQueue]
    concurrency: int
    inFlight: int
    lastSeen: str | None
    stale: bool


class WorkerList(BaseModel):
    """``GET /workers``: every worker with a heartbeat; ``stale`` after three missed beats."""

    workers: list[WorkerInfo]


class ThroughputMinute(BaseModel):
    minute: str
    completed: int
    failed: int


class Throughput(BaseModel):
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
    """Workers from the per-queue heartbeat hashes, one round trip for all queues."""
    queues = await client.queues()
    async with client.redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for queue in queues:
            pipe.hgetall(client.keys(queue).workers)
        (seconds, micros), *beats = await pipe.execute()
    now = int(seconds) * 1000 + int(micros) // 1000
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
        info.stale = now - newest[worker_id] > keys.HEARTBEAT_LATE_S * 1000
    return WorkerList(workers=sorted(found.values(), key=lambda w: w.workerId))


async def throughput(client: Client, queue: str) -> Throughput:
    """The last hour's per-minute counters of ``queue`` (any API replica can read them)."""
    return (await throughputs(client, [await known_queue(client, queue)]))[0]


async def throughputs(client: Client, queues: list[str]) -> list[Throughput]:
    """The last hour of several queues: Redis's clock, then one pipeline for all of them."""
    this_minute = await redis_now_ms(client.redis) // 60_000
    minutes = range(this_minute - keys.THROUGHPUT_WINDOW_MIN + 1, this_minute + 1)
    async with client.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            q = client.keys(queue)
            for minute in minutes:
                pipe.hmget(q.throughput(minute), "completed", "failed")
        counts = await pipe.execute()
    per = len(minutes)
    return [
        Throughput(queue=queue, minutes=[
            ThroughputMinute(minute=iso(minute * 60_000) or "", completed=int(c or 0),
                             failed=int(f or 0))
            for minute, (c, f) in zip(minutes, counts[n * per:(n + 1) * per], strict=True)
        ])
        for n, queue in enumerate(queues)
    ]
