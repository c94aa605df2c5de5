"""Opening Redis: one URL, one client per process, retried with backoff while Redis is away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions
import tenacity
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from jobq.shutdown import wait_event

T = TypeVar("T")

# What "Redis is away" looks like to redis-py: refused or reset connections, timeouts, and a
# server still loading its AOF after a restart.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def connect(url: str, *, max_connections: int = 64) -> Redis:
    """A client for ``url``; connections are made lazily and re-made after a failure.

    The pool blocks (up to 5 s) for a free connection instead of failing when all are busy,
    so a burst of concurrent calls queues up rather than erroring.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=15,
    )
    client = Redis.from_pool(pool)
    # One immediate retry for a connection gone stale, no hidden backoff: redis-py's default
    # (10 retries, sleeps up to 1 s) would hide outages from our own retry policy (tenacity,
    # 503s) and stall blocking calls for a second after Redis comes back.
    client.set_retry(Retry(NoBackoff(), 1))
    return client


def retrying(
    *, give_up_after_s: float | None = None, max_wait_s: float = 5.0,
    on: tuple[type[BaseException], ...] = REDIS_DOWN, until: asyncio.Event | None = None,
) -> tenacity.AsyncRetrying:
    """Retry on Redis outages (or the errors in ``on``) with exponential backoff and jitter,
    forever unless limited; with ``until``, a pause between tries ends as soon as that event is
    set, and no further try starts (the last error is raised).

    Build a new one for every retry loop, never keep one to reuse: ``AsyncRetrying`` keeps the
    state of its ``async for`` on the instance, so two loops sharing one (two jobs finishing at
    once) end each other early, without their write and without an error.
    """
    stop: tenacity.stop.stop_base = (
        tenacity.stop_after_delay(give_up_after_s) if give_up_after_s else tenacity.stop_never)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    if until is not None:
        event = until
        stop = tenacity.stop_any(stop, _StopWhenSet(event))

        async def sleep(seconds: float) -> None:
            await wait_event(event, seconds)

    return tenacity.AsyncRetrying(
        sleep=sleep,
        retry=tenacity.retry_if_exception_type(on),
        wait=tenacity.wait_exponential_jitter(initial=0.05, max=max_wait_s),
        stop=stop,
        reraise=True,
    )


class _StopWhenSet(tenacity.stop.stop_base):
    """Stop retrying once an asyncio event is set (tenacity's own takes a threading.Event)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.event.is_set()


async def redis_now_ms(redis: Redis) -> int:
    """Redis's clock, the one every script stamps jobs with (ms since the epoch)."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000
