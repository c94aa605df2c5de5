"""Admin reads at the API: a page of 50 jobs from a queue holding 1,000,000, and the dashboard's
overview with 20 queues. Prints latencies and the Redis commands each request sends (and those
its scripts run inside Redis); asserts nothing.

    .venv/bin/python bench/admin.py [--jobs 1000000] [--queues 20] [--requests 200]
    .venv/bin/python bench/admin.py --baseline HEAD~1   # and the API at another commit, same run

Starts the embedded Valkey and one ``jobq api`` (as bench/api.py does); with ``--baseline`` a
second ``jobq api`` runs that commit's code on the same Redis and keys, and the two are measured
in alternating rounds so both see the same machine load. Jobs are written straight into Redis
by a server-side loop in the shape ``enqueue`` stores, so filling a million takes seconds
instead of a million API calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from redis import Redis as SyncRedis
from sidebyside import baseline_tree

from api import free_port, start_stack, wait_http
from jobq.connection import connect
from jobq.keys import QueueKeys

ROUNDS = 4  # alternating rounds per path when a baseline runs

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
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        http.get(path).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def commands_per_request(http: httpx.Client, redis: SyncRedis, path: str,
                         requests: int) -> tuple[float, float]:
    """Per request: the commands the API sent and those its scripts ran inside Redis, read
    from MONITOR (nothing else runs on this Redis). A marker command ends the count."""
    marker = f"bench-admin-end-{time.monotonic_ns()}"
    sent = inner = 0
    for _ in range(3):  # warm: connections opened and scripts loaded are not per request
        http.get(path).raise_for_status()
    with redis.monitor() as monitor:
        for _ in range(requests):
            http.get(path).raise_for_status()
        redis.echo(marker)
        for command in monitor.listen():
            if marker in command["command"]:
                break
            if command["client_type"] == "lua":
                inner += 1
            else:
                sent += 1
    return sent / requests, inner / requests


def show(what: str, samples: list[float], commands: tuple[float, float]) -> None:
    cuts = statistics.quantiles(samples, n=100)
    print(f"{what:<24} p50 {cuts[49]:7.2f} ms  p95 {cuts[94]:7.2f} ms  p99 {cuts[98]:7.2f} ms"
          f"  commands sent {commands[0]:6.1f}, run by scripts {commands[1]:6.1f}", flush=True)


def start_baseline(stack: list[subprocess.Popen[bytes]], ref: str, redis_url: str,
                   prefix: str) -> str:
    """One more ``jobq api`` running ``ref``'s code on the same Redis and keys."""
    port = free_port()
    root = baseline_tree(ref, Path(tempfile.mkdtemp(prefix="bench-admin-baseline-")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(REDIS_URL=redis_url, JOBQ_KEY_PREFIX=prefix, JOBQ_TASKS="jobq.demo",
               JOBQ_LOG_LEVEL="warning", PYTHONPATH=root)
    stack.append(subprocess.Popen([sys.executable, "-m", "jobq", "api", "--port", str(port)],
                                  env=env, cwd=tempfile.gettempdir()))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    print(f"baseline api {url} runs {ref}", flush=True)
    return url


def main(args: argparse.Namespace) -> None:
    stack: list[subprocess.Popen[bytes]] = []
    try:
        url, redis_url, prefix = start_stack(stack, with_details=True)
        apis = {"this tree": url}
        if args.baseline:
            apis[args.baseline] = start_baseline(stack, args.baseline, redis_url, prefix)
        started = time.perf_counter()
        asyncio.run(fill(redis_url, prefix, "bench-queue", args.jobs))
        for n in range(args.queues - 1):
            asyncio.run(fill(redis_url, prefix, f"q{n:02d}", 10))
        print(f"filled {args.jobs} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared)", flush=True)
        paths = {
            "/queues/bench-queue/jobs?limit=50": "jobs page 50 (first)",
            "/queues/bench-queue/jobs?limit=50&cursor=5000": "jobs page 50 (cursor)",
            "/ui/f/overview": f"overview ({args.queues}+ queues)",
        }
        clients = {name: httpx.Client(base_url=u, timeout=30) for name, u in apis.items()}
        redis = SyncRedis.from_url(redis_url)
        rounds = ROUNDS if len(apis) > 1 else 1
        try:
            for path, label in paths.items():
                samples: dict[str, list[float]] = {name: [] for name in apis}
                commands = {name: commands_per_request(http, redis, path, 5)
                            for name, http in clients.items()}
                for _ in range(rounds):
                    for name, http in clients.items():
                        samples[name] += timed(http, path, args.requests // rounds)
                print(f"\n{label}: GET {path}", flush=True)
                for name in apis:
                    show(f"  {name}", samples[name], commands[name])
        finally:
            redis.close()
            for http in clients.values():
                http.close()
    finally:
        for proc in reversed(stack):
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", metavar="REF", help="also measure the API at this commit")
    main(parser.parse_args())
