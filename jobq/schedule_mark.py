"""The last-fired mark of one schedule of ``jobq scheduler`` (docs/architecture.md, "Scheduling").

The bucket's idempotency key makes one job per bucket only while its record lives
(IDEMPOTENCY_RETENTION_S, 7 days) or its finished job is kept (24 h): a scheduler restarted, or
a replica started, later than that into a longer bucket (``@monthly``, ``every: 30d``) would
enqueue the bucket again. The mark remembers, in Redis, the newest bucket enqueued, until that
bucket has ended, and a scheduler never fires a bucket at or before it.

The mark is raised only after the enqueue answered (job created, already there, or a conflict,
which also means the bucket has its job), so it never names a bucket without a job. A crash
between the two leaves the older mark, and the next try finds the job through its idempotency
record, which is then fresh. ``ZADD GT`` only ever raises the score and ``EXPIRE NX`` + ``GT``
only ever lengthen the life, so a replica that answers late cannot move the mark back.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jobq import keys
from jobq.connection import Redis
from jobq.schedule import ScheduleSpec, next_fire


class ScheduleMark:
    """Read and raise the mark of ``spec``, kept in the hash tag of the queue it enqueues to."""

    def __init__(self, redis: Redis, q: keys.QueueKeys, spec: ScheduleSpec) -> None:
        self.redis = redis
        self.spec = spec
        self.key = q.schedule_mark(spec.namespace, spec.name)
        self.member = f"{spec.namespace}/{spec.name}"  # for a reader of the key; one per key

    async def read(self) -> datetime | None:
        """The start of the newest bucket enqueued, if it is still remembered."""
        score = await self.redis.zscore(self.key, self.member)
        return None if score is None else datetime.fromtimestamp(float(score), UTC)

    async def raise_to(self, bucket: datetime, now: datetime) -> None:
        """Remember ``bucket`` (unless a newer one is already) until it has ended."""
        end = next_fire(self.spec, bucket)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {self.member: bucket.timestamp()}, gt=True)
            if end is None:  # the schedule never fires again: its last bucket never ends
                pipe.persist(self.key)
            else:
                ttl_s = max(int((end - now).total_seconds()), 0) + keys.SCHEDULE_MARK_MARGIN_S
                pipe.expire(self.key, ttl_s, nx=True)  # a new mark has no TTL yet
                pipe.expire(self.key, ttl_s, gt=True)  # a kept one only lives longer
            await pipe.execute()
