"""What the autoscaler reads from Redis: a queue's backlog and its workers' heartbeats."""

from __future__ import annotations

from dataclasses import dataclass

from jobq.connection import Redis, redis_now_ms, result_of
from jobq.keys import PRIORITY_MAX, PRIORITY_MIN, QueueKeys


@dataclass(frozen=True, slots=True)
class Backlog:
    """Work a queue has for its workers: waiting, delayed jobs already due, and running.
    A paused queue's waiting and due jobs cannot start, so only its running ones count: the
    autoscaler never scales a paused queue up."""

    waiting: int
    due_delayed: int
    active: int
    paused: bool = False

    @property
    def total(self) -> int:
        if self.paused:
            return self.active
        return self.waiting + self.due_delayed + self.active


async def read_backlog(redis: Redis, queue: QueueKeys) -> Backlog:
    """Waiting + due delayed + active jobs. "Due" is judged on Redis's clock, the one the
    scripts stamp due times with, not on this pod's."""
    now_ms = await redis_now_ms(redis, queue.wait)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(queue.delayed, "-inf", now_ms)
        pipe.zcard(queue.active)
        pipe.exists(queue.paused)
        for level in range(PRIORITY_MIN, PRIORITY_MAX + 1):  # every priority's wait list
            pipe.llen(queue.wait_level(level))
        due, active, paused, *waiting = await pipe.execute()
    # Jobs parked by a concurrency limit or held by a rate limit are left out: more workers
    # would not start them sooner.
    return Backlog(sum(int(n) for n in waiting), int(due), int(active), bool(paused))


async def read_heartbeats(redis: Redis, queue: QueueKeys) -> dict[str, str]:
    """Worker id -> JSON heartbeat ``{pod, pid, inflight, concurrency, seenAt}``."""
    beats = await result_of(redis.hgetall(queue.workers))
    return {str(worker): str(beat) for worker, beat in beats.items()}
