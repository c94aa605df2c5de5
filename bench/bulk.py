"""Bulk enqueue rates: ``Client.enqueue_many`` from one Python process, and ``POST /jobs/batch``
on one ``jobq api`` (uvicorn) process, on the embedded Valkey (or REDIS_URL).

    .venv/bin/python bench/bulk.py [--jobs 100000] [--batch 1000] [--in-flight 4]

Every job is new (a fresh key) and valid; the rate is jobs created per second of wall time,
validation, hashing, JSON and the Redis scripts included. For HTTP, the request bodies are
built before the clock starts and ``--in-flight`` requests are kept outstanding; the load
generator shares the machine with the API and Redis, so the figure is a floor. Also prints
Redis's CPU per job (INFO used_cpu_* deltas) and the machine's load. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from redis.asyncio import Redis

from jobq.client import Client, JobRequest
from jobq.connection import connect
from jobq.embedded import ServerProcess, free_port, valkey_binary
from jobq.settings import Settings
from jobq.tasks import load_registry

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


async def redis_cpu_s(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def enqueue_many_rate(client: Client, jobs: int, batch: int) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:6]
    requests = [JobRequest("noop", f"{tag}-{i}", {"n": i}) for i in range(jobs)]
    cpu = await redis_cpu_s(client.redis)
    started = time.perf_counter()
    for at in range(0, jobs, batch):
        results = await client.enqueue_many(requests[at:at + batch])
        assert not any(isinstance(r, Exception) for r in results)
    elapsed = time.perf_counter() - started
    return jobs / elapsed, (await redis_cpu_s(client.redis) - cpu) / jobs * 1e6


async def http_batch_rate(url: str, redis: Redis, jobs: int, batch: int,
                          in_flight: int) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:6]
    bodies = [orjson.dumps({"jobs": [
        {"type": "noop", "idempotencyKey": f"{tag}-{i}", "payload": {"n": i}}
        for i in range(at, min(at + batch, jobs))]}) for at in range(0, jobs, batch)]
    pending = list(reversed(bodies))
    headers = {"content-type": "application/json"}
    cpu = await redis_cpu_s(redis)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def sender() -> None:
            while pending:
                answer = await http.post("/jobs/batch", content=pending.pop(), headers=headers)
                assert answer.status_code == 200 and answer.json()["errors"] == 0, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(in_flight)))
        elapsed = time.perf_counter() - started
    return jobs / elapsed, (await redis_cpu_s(redis) - cpu) / jobs * 1e6


def start_api(url: str, settings: Settings, logdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")},
           "REDIS_URL": url, "JOBQ_KEY_PREFIX": settings.key_prefix, "JOBQ_TASKS": "benchtasks",
           "JOBQ_LOG_LEVEL": "warning", "PYTHONPATH": str(BENCH)}
    log = (logdir / "api.log").open("wb")
    # Not from the repo root: there `python -m jobq` would import ./jobq, which lacks the
    # subpackages the install maps in from api/, worker/ and operator/.
    proc = subprocess.Popen([sys.executable, "-m", "jobq", "api", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=logdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"jobq api did not start; see {logdir / 'api.log'}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="jobq-bulk-"))
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = ServerProcess(valkey_binary(), logdir / "valkey").start()
        url = server.url
    api = None
    try:
        redis = connect(url)
        info = await redis.info("server")
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, "
              f"Python {platform.python_version()}; server: {info.get('server_name', 'redis')} "
              f"{info.get('valkey_version') or info['redis_version']}")
        settings = Settings(redis_url=url, key_prefix=f"bulk{uuid.uuid4().hex[:6]}",
                            tasks=["benchtasks"])
        client = Client(redis, load_registry(settings.tasks), settings)
        await client.scripts.load()
        for _ in range(args.trials):
            rate, cpu = await enqueue_many_rate(client, args.jobs, args.batch)
            print(f"enqueue_many, {args.batch} jobs per call: {rate:,.0f} jobs/s "
                  f"(Redis CPU {cpu:.1f} us/job)")
        await redis.flushdb()
        api, base = start_api(url, settings, logdir)
        for _ in range(args.trials):
            rate, cpu = await http_batch_rate(base, redis, args.jobs, args.batch, args.in_flight)
            print(f"POST /jobs/batch, {args.batch} jobs per request, {args.in_flight} in flight, "
                  f"1 uvicorn process: {rate:,.0f} jobs/s (Redis CPU {cpu:.1f} us/job)")
        print(f"load after: {os.getloadavg()[0]:.2f}")
        await redis.aclose()
    finally:
        if api:
            api.terminate()
            api.wait(10)
        if server:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
