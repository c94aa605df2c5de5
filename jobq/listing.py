"""Pages of a queue's jobs by state (``GET /queues/{queue}/jobs``), O(page) Redis work.

Waiting jobs come in queue order (next to run first), delayed ones by due time, active ones by
lease deadline, finished ones newest first. The cursor is the rank to continue from: reading a
rank of a sorted set is O(log n), and waiting jobs are read from the list's tail, the end that
runs next, so the cost is the page plus the depth of the page in the queue. Jobs move between
states while someone pages, so a page may repeat or miss a job that moved meanwhile.
"""

from __future__ import annotations

from typing import Literal

from jobq.client import Client
from jobq.connection import result_of
from jobq.errors import InvalidCursor
from jobq.jobs import JobStatus, job_from_hash, status_of
from jobq.keys import PRIORITY_MAX, PRIORITY_MIN, QueueKeys
from jobq.models import DeferredModel

ListState = Literal["waiting", "active", "delayed", "completed", "failed", "cancelled"]
LIST_STATES: tuple[ListState, ...] = (
    "waiting", "active", "delayed", "completed", "failed", "cancelled")


class JobPage(DeferredModel):
    """One page of a queue's jobs in one state; pass ``nextCursor`` back for the next."""

    queue: str
    state: ListState
    items: list[JobStatus]
    nextCursor: str | None


def _rank(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 12:
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return int(cursor)


async def _waiting_in_run_order(client: Client, q: QueueKeys, start: int, stop: int) -> list[str]:
    """Waiting jobs ranked ``start``..``stop`` in the order workers take them: the highest
    priority's list first, each from its tail. (Jobs parked by a concurrency limit wait on
    their key's list and are not among them.)"""
    r = client.redis
    levels = list(range(PRIORITY_MAX, PRIORITY_MIN - 1, -1))
    async with r.pipeline(transaction=False) as pipe:
        for level in levels:
            pipe.llen(q.wait_level(level))
        lengths = await pipe.execute()
    ids: list[str] = []
    offset = 0  # rank of the first job of this level
    for level, length in zip(levels, lengths, strict=True):
        lo, hi = max(start - offset, 0), min(stop - offset, int(length) - 1)
        if lo <= hi:
            # Rank k from the tail is index -(k + 1); the range comes head first: reverse it.
            chunk = await result_of(r.lrange(q.wait_level(level), -(hi + 1), -(lo + 1)))
            ids += [str(i) for i in reversed(chunk)]
        offset += int(length)
        if offset > stop:
            break
    return ids


async def list_jobs(
    client: Client, queue: str, state: ListState, limit: int, cursor: str | None
) -> JobPage:
    """``limit`` jobs of ``queue`` in ``state`` from ``cursor`` on (two round trips)."""
    start = _rank(cursor)
    q = client.keys(queue)
    stop = start + limit  # one more than the page, to know whether another page follows
    r = client.redis
    if state == "waiting":
        ids = await _waiting_in_run_order(client, q, start, stop)
    else:
        key = {"active": q.active, "delayed": q.delayed, "completed": q.completed,
               "failed": q.failed, "cancelled": q.cancelled}[state]
        newest_first = state in ("completed", "failed", "cancelled")
        ids = [str(i) for i in await r.zrange(key, start, stop, desc=newest_first)]
    page, more = ids[:limit], len(ids) > limit
    async with r.pipeline(transaction=False) as pipe:
        for job_id in page:
            pipe.hgetall(q.job(job_id))
        records = await pipe.execute()
    items = [status_of(job_from_hash(raw)) for raw in records if raw]
    return JobPage(queue=queue, state=state, items=items,
                   nextCursor=str(start + limit) if more else None)
