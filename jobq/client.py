"""The one producer path: API, CLI and scheduler all create jobs through ``Client.enqueue``."""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobq import keys
from jobq.errors import InvalidCursor, JobExpired, NotFound, UnknownTask
from jobq.jobs import (
    Backoff,
    DlqEntry,
    DlqPage,
    JobPublic,
    dlq_entry_from_hash,
    dumps,
    fingerprint,
    job_from_hash,
)
from jobq.logs import get_logger
from jobq.scripts import NewJob, Scripts
from jobq.settings import Settings
from jobq.tasks import Registry

log = get_logger("jobq.client")

COUNT_STATES = ("waiting", "active", "delayed", "completed", "failed", "cancelled", "dlq")


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: str
    queue: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ReplayResult:
    job_id: str
    replayed_from_job_id: str
    dlq_id: str
    duplicate: bool


class Client:
    """Create, read and replay jobs. Holds no connection of its own: it is given one."""

    def __init__(self, redis: Redis, registry: Registry, settings: Settings) -> None:
        self.redis = redis
        self.registry = registry
        self.settings = settings
        self.scripts = Scripts(redis)
        self._prefix = settings.key_prefix
        # The registry's queues, built once: enqueue is on every producer's hot path.
        self._known = {q: keys.QueueKeys(self._prefix, q) for q in registry.queues}

    def keys(self, queue: str) -> keys.QueueKeys:
        return self._known.get(queue) or keys.QueueKeys(self._prefix, queue)

    async def enqueue(
        self,
        type: str,
        idempotency_key: str,
        payload: dict[str, Any],
        *,
        attempts: int | None = None,
        backoff: Backoff | None = None,
        delay_s: float = 0.0,
    ) -> EnqueueResult:
        """Create a job once per idempotency key (R2); the payload is validated first."""
        task = self.registry.get(type)
        task.validate(payload)
        job_id = keys.job_id_for(idempotency_key)
        job = NewJob(type, task.queue, dumps(payload), idempotency_key,
                     attempts or task.attempts, _backoff_json(backoff or task.backoff),
                     task.timeout_s)
        duplicate = await self.scripts.enqueue(
            self.keys(task.queue), keys.idempotency_record(self._prefix, job_id), job_id,
            fingerprint(type, payload), self.settings.idempotency_retention_s,
            int(delay_s * 1000), job,
        )
        return EnqueueResult(job_id, task.queue, duplicate)

    async def queues(self) -> list[str]:
        """Every queue a job was created in, and those of this process's tasks: what a reader
        sees does not depend on which task modules it loaded."""
        known = await self.redis.smembers(keys.known_queues(self._prefix))
        return sorted({str(q) for q in known} | set(self.registry.queues))

    async def get_job(self, job_id: str) -> JobPublic:
        """The full record of a job, from whichever queue holds it. ``JobExpired`` when the
        record was trimmed (R12) while its idempotency record still says the job existed."""
        mine = self.registry.queues
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.known_queues(self._prefix))
            pipe.exists(keys.idempotency_record(self._prefix, job_id))
            for queue in mine:
                pipe.hgetall(self.keys(queue).job(job_id))
            known, remembered, *records = await pipe.execute()
        others = sorted(set(known) - set(mine))
        if not any(records) and others:  # a queue of tasks this process did not load
            async with self.redis.pipeline(transaction=False) as pipe:
                for queue in others:
                    pipe.hgetall(self.keys(queue).job(job_id))
                records = await pipe.execute()
        for raw in records:
            if raw:
                return job_from_hash(raw)
        if remembered:
            raise JobExpired(f"job {job_id} has expired: finished job records are trimmed "
                             "by count and age, sooner than idempotency keys")
        raise NotFound(f"no job {job_id}")

    async def counts(self) -> dict[str, dict[str, int | bool]]:
        """Jobs per state, per queue, and whether the queue is paused."""
        queues = await self.queues()
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                q = self.keys(queue)
                pipe.llen(q.wait)
                pipe.zcard(q.active)
                pipe.zcard(q.delayed)
                pipe.zcard(q.completed)
                pipe.zcard(q.failed)
                pipe.zcard(q.cancelled)
                pipe.zcard(q.dlq)
                pipe.exists(q.paused)
            raw = await pipe.execute()
        per = len(COUNT_STATES) + 1
        out: dict[str, dict[str, int | bool]] = {}
        for i, queue in enumerate(queues):
            row = raw[i * per:(i + 1) * per]
            out[queue] = {**dict(zip(COUNT_STATES, row, strict=False)), "paused": bool(row[-1])}
        return out

    async def get_dlq_entry(self, dlq_id: str) -> DlqEntry:
        queue = keys.queue_of_dlq_id(dlq_id)
        if queue is None:
            raise NotFound(f"no DLQ entry {dlq_id}")
        q = self.keys(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(q.dlq_entry(dlq_id))
            pipe.lrange(q.dlq_replays(dlq_id), 0, -1)
            raw, replays = await pipe.execute()
        if not raw:
            raise NotFound(f"no DLQ entry {dlq_id}")
        return dlq_entry_from_hash(raw, replays)

    async def list_dlq(
        self, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> DlqPage:
        """DLQ entries newest first; ``cursor`` continues after the last entry of a page."""
        queues = [queue] if queue else await self.queues()
        top: float | str = "+inf"
        after: tuple[float, str] | None = None
        if cursor:
            score, _, last_id = cursor.partition(":")
            if not score.isdigit() or keys.queue_of_dlq_id(last_id) is None:
                raise InvalidCursor(f"invalid cursor {cursor!r}")
            after = (float(score), last_id)
            top = after[0]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in queues:
                pipe.zrevrangebyscore(
                    self.keys(name).dlq, top, "-inf", start=0, num=limit + 64, withscores=True
                )
            pages = await pipe.execute()
        candidates = sorted(
            ((score, dlq_id) for page in pages for dlq_id, score in page),
            key=lambda item: (item[0], _dlq_seq(item[1])),
            reverse=True,
        )
        if after is not None:
            mark = (after[0], _dlq_seq(after[1]))
            candidates = [c for c in candidates if (c[0], _dlq_seq(c[1])) < mark]
        chosen = candidates[:limit]
        items = await asyncio.gather(*(self.get_dlq_entry(dlq_id) for _, dlq_id in chosen))
        more = len(candidates) > limit
        next_cursor = f"{int(chosen[-1][0])}:{chosen[-1][1]}" if more and chosen else None
        return DlqPage(items=list(items), nextCursor=next_cursor)

    async def replay(self, dlq_id: str, idempotency_key: str | None = None) -> ReplayResult:
        """Create a new job from a DLQ entry (R7); the entry itself never changes."""
        entry = await self.get_dlq_entry(dlq_id)
        key = idempotency_key or f"replay:{dlq_id}:{uuid.uuid4()}"
        job_id = keys.job_id_for(key)
        try:
            task = self.registry.get(entry.type)
            max_attempts, backoff, timeout = task.attempts, task.backoff, task.timeout_s
        except UnknownTask:  # replayed by a process without that task: keep its shape
            max_attempts, backoff, timeout = max(entry.attempts, 1), Backoff(), None
        job = NewJob(entry.type, entry.queue, dumps(entry.payload), key, max_attempts,
                     _backoff_json(backoff), timeout)
        duplicate = await self.scripts.replay(
            self.keys(entry.queue), dlq_id, keys.idempotency_record(self._prefix, job_id), job_id,
            fingerprint(f"replay:{dlq_id}", entry.payload), self.settings.idempotency_retention_s,
            job, entry.originalJobId,
        )
        log.info("job.replayed", jobId=job_id, queue=entry.queue, type=entry.type,
                 replayedFromJobId=entry.originalJobId, dlqId=dlq_id, duplicate=duplicate)
        return ReplayResult(job_id, entry.originalJobId, dlq_id, duplicate)


@functools.lru_cache(maxsize=256)
def _backoff_json(backoff: Backoff) -> str:
    """Backoffs are frozen and few: serialise each once."""
    return backoff.model_dump_json()


def _dlq_seq(dlq_id: str) -> int:
    _, _, seq = dlq_id.rpartition("-")
    return int(seq) if seq.isdigit() else 0
