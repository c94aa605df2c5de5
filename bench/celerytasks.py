"""Celery side of bench/executors.py: the same 20 ms pure-Python job on Celery's prefork pool.

Runs in its own virtualenv (bench/executors.py creates it with Celery pinned); the broker is the
benchmark's Valkey (``BENCH_REDIS_URL``). Each task counts itself with one INCR when done."""

from __future__ import annotations

import os

import redis
from celery import Celery

URL = os.environ["BENCH_REDIS_URL"]
app = Celery("celerytasks", broker=URL)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, task_acks_late=False,
                broker_connection_retry_on_startup=True)
_counter: redis.Redis | None = None


def burn(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


@app.task(name="cpu")
def cpu(loops: int) -> int:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(URL)
    total = burn(loops)
    _counter.incr(os.environ["BENCH_COUNTER_KEY"])
    return total


if __name__ == "__main__":  # python celerytasks.py JOBS LOOPS: send the jobs
    import sys

    jobs, loops = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(jobs):
        cpu.apply_async((loops,), queue="cpu")
