"""What the autoscaler reads from Redis: a queue's backlog and its workers' heartbeats."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from jobq.connection import redis_now_ms
from jobq.keys import QueueKeys


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
    now_ms = await redis_now_ms(redis)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.llen(queue.wait)
        pipe.zcount(queue.delayed, "-inf", now_ms)
        pipe.zcard(queue.active)
        pipe.exists(queue.paused)
        waiting, due, active, paused = await pipe.execute()
    return Backlog(int(waiting), int(due), int(active), bool(paused))


async def read_heartbeats(redis: Redis, queue: QueueKeys) -> dict[str, str]:
    """Worker id -> JSON heartbeat ``{pod, pid, inflight, concurrency, seenAt}``."""
    beats = await redis.hgetall(queue.workers)
    return {str(worker): str(beat) for worker, beat in beats.items()}
