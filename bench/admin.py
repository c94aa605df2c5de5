"""Admin reads at the API: a page of 50 jobs from a queue holding 1,000,000, and the dashboard's
overview with 20 queues. Prints latencies; asserts nothing.

    .venv/bin/python bench/admin.py [--jobs 1000000] [--queues 20] [--requests 200]

Starts the embedded Valkey and one ``jobq api`` (as bench/api.py does). Jobs are written
straight into Redis by a server-side loop in the shape ``enqueue`` stores, so filling a million
takes seconds instead of a million API calls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time

import httpx

from api import start_stack
from jobq.connection import connect
from jobq.keys import QueueKeys

FILL = """
local waitKey, prefix = KEYS[1], KEYS[2]
local from, to, queue = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = from, to do
  local id = "bench" .. i
  redis.call("HSET", prefix .. id, "id", id, "type", "noop", "queue", queue, "payload",
    '{"n":' .. i .. '}', "attempts", 0, "maxAttempts", 3, "backoff", "{}", "state", "waiting",
    "createdAt", 1700000000000 + i, "readyAt", 1700000000000 + i)
  redis.call("LPUSH", waitKey, id)
end
return to
"""


async def fill(redis_url: str, prefix: str, queue: str, jobs: int) -> None:
    redis = connect(redis_url)
    q = QueueKeys(prefix, queue)
    await redis.sadd(f"{prefix}:queues", queue)
    for start in range(0, jobs, 20_000):
        await redis.eval(FILL, 2, q.wait, q.job_prefix, start, min(start + 20_000, jobs) - 1,
                         queue)
    await redis.aclose()


def timed(http: httpx.Client, path: str, requests: int) -> list[float]:
    http.get(path).raise_for_status()  # warm
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        http.get(path).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def show(what: str, samples: list[float]) -> None:
    cuts = statistics.quantiles(samples, n=100)
    print(f"{what:<58} p50 {cuts[49]:6.2f} ms  p95 {cuts[94]:6.2f} ms  p99 {cuts[98]:6.2f} ms",
          flush=True)


def main(args: argparse.Namespace) -> None:
    stack: list[subprocess.Popen[bytes]] = []
    try:
        url, redis_url, prefix = start_stack(stack, with_details=True)
        started = time.perf_counter()
        asyncio.run(fill(redis_url, prefix, "bench-queue", args.jobs))
        for n in range(args.queues - 1):
            asyncio.run(fill(redis_url, prefix, f"q{n:02d}", 10))
        print(f"filled {args.jobs} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        with httpx.Client(base_url=url, timeout=30) as http:
            show("GET /queues/bench-queue/jobs?limit=50 (first page)",
                 timed(http, "/queues/bench-queue/jobs?limit=50", args.requests))
            show("GET /queues/bench-queue/jobs?limit=50&cursor=5000",
                 timed(http, "/queues/bench-queue/jobs?limit=50&cursor=5000", args.requests))
            show(f"GET /ui/f/overview ({args.queues} queues, 60 minutes each)",
                 timed(http, "/ui/f/overview", args.requests))
    finally:
        for proc in reversed(stack):
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    main(parser.parse_args())
