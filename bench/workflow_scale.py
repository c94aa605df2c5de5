"""A 20,000-node fan-out / fan-in workflow (root -> children -> join) on real workers, and
what it costs everyone else: the latency of enqueueing into another queue, one call at a time,
before and while the workflow runs, and the longest script calls SLOWLOG saw.

    .venv/bin/python bench/workflow_scale.py [--children 20000] [--workers 2] [--concurrency 32]
    .venv/bin/python bench/workflow_scale.py --engine-only   # no workers: the scripts alone

``--engine-only`` plays the relay in this process with no worker running (the root's outcome,
then each child's, then the join's, applied as outbox entries would be), so the server runs
nothing but the workflow's own script calls: their longest durations then say more about the
scripts than about a loaded machine's scheduling.

Starts the embedded Valkey; the node tasks are tests/wfscaletasks.py (no-op), the other
queue's task bench/benchtasks.py's ``noop`` (nothing drains it: only the enqueue is timed).
Prints figures; asserts nothing. The machine is shared: say so beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO / "tests")]

from wfscaletasks import QUEUE, fan  # noqa: E402

from jobq.client import Client  # noqa: E402
from jobq.connection import connect  # noqa: E402
from jobq.embedded import ServerProcess, valkey_binary  # noqa: E402
from jobq.scripts import SCRIPT_NAMES, script_source  # noqa: E402
from jobq.settings import Settings  # noqa: E402
from jobq.tasks import load_registry  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled")


def summary(ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"n={len(ms)} p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, "
            f"max {ms[-1]:.2f} ms")


async def enqueue_latencies(client: Client, until: Any, seconds: float | None) -> list[float]:
    """Enqueue one job at a time into bench-queue until ``until()`` (or for ``seconds``)."""
    out: list[float] = []
    began = time.perf_counter()
    while True:
        t = time.perf_counter()
        await client.enqueue("noop", uuid.uuid4().hex, {})
        out.append((time.perf_counter() - t) * 1000)
        if seconds is not None and time.perf_counter() - began >= seconds:
            return out
        if seconds is None and await until():
            return out
        await asyncio.sleep(0.002)  # about 400 enqueues/s: a steady producer, not a flood


async def engine_only(args: argparse.Namespace) -> None:
    import json

    from jobq.workflows.relay import Relay

    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(valkey_binary(), Path(tmp)).start()
        settings = Settings(redis_url=server.url, key_prefix="e", tasks=["wfscaletasks"],
                            log_level="warning")
        redis: Any = connect(settings.redis_url)
        client = Client(redis, load_registry(settings.tasks), settings)
        try:
            await redis.config_set("slowlog-log-slower-than", 1000)
            await redis.config_set("slowlog-max-len", 100_000)
            await redis.slowlog_reset()
            began = time.perf_counter()
            created = await client.create_workflow("engine-fan", fan(args.children))
            relay = Relay(client.scripts, settings)
            q = client.keys(QUEUE)
            for key in ["root", *(f"c{i}" for i in range(args.children)), "join"]:
                wf = await redis.hget(q.job(created.jobs[key]), "wf")
                await relay.apply_entry(json.dumps({"w": wf, "o": "S", "d": "{}"}))
            total_s = time.perf_counter() - began
            state = await redis.hget(client.workflows.keys(created.workflow_id).meta, "state")
            slow = await redis.slowlog_get(100_000)
        finally:
            await redis.aclose()
            server.stop()
    print(f"engine only, root -> {args.children:,} children -> join, relay in-process: {state} "
          f"after {total_s:.1f} s")
    print("script calls over 1 ms (count, longest): " + _longest(slow))


def _longest(slow: list[dict[str, Any]]) -> str:
    shas = {hashlib.sha1(script_source(n).encode()).hexdigest(): n for n in SCRIPT_NAMES}
    per: dict[str, list[int]] = {}
    for e in slow:
        parts = (e["command"].decode(errors="replace") if isinstance(e["command"], bytes)
                 else str(e["command"])).split()
        if parts and parts[0].lower() == "evalsha":
            per.setdefault(shas.get(parts[1], parts[1][:8]), []).append(int(e["duration"]))
    return ", ".join(f"{name} {len(v)} {max(v) / 1000:.1f} ms"
                     for name, v in sorted(per.items(), key=lambda kv: -max(kv[1])))


def start_workers(env: dict[str, str], n: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(
        [sys.executable, "-m", "jobq", "worker", "--metrics-port", "0", "--queue",
         f"{QUEUE}:{concurrency}"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) for _ in range(n)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait(timeout=30)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(valkey_binary(), Path(tmp)).start()
        settings = Settings(redis_url=server.url, key_prefix=f"b{uuid.uuid4().hex[:8]}",
                            tasks=["benchtasks", "wfscaletasks"], log_level="warning")
        redis: Any = connect(settings.redis_url)
        client = Client(redis, load_registry(settings.tasks), settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
        env.update(REDIS_URL=settings.redis_url, JOBQ_KEY_PREFIX=settings.key_prefix,
                   JOBQ_TASKS=",".join(settings.tasks), JOBQ_LOG_LEVEL="warning",
                   PYTHONPATH=f"{BENCH}:{REPO / 'tests'}")
        workers = start_workers(env, args.workers, args.concurrency)
        try:
            await redis.config_set("slowlog-log-slower-than", 1000)
            await redis.config_set("slowlog-max-len", 100_000)
            before = await enqueue_latencies(client, None, 3.0)
            await redis.slowlog_reset()
            began = time.perf_counter()
            created = await client.create_workflow("bench-fan", fan(args.children))
            created_s = time.perf_counter() - began
            meta = client.workflows.keys(created.workflow_id).meta

            async def ended() -> bool:
                return str(await redis.hget(meta, "state")) in FINAL

            during = await enqueue_latencies(client, ended, None)
            total_s = time.perf_counter() - began
            slow = await redis.slowlog_get(100_000)
            state = await redis.hget(meta, "state")
        finally:
            stop_workers(workers)
            await redis.aclose()
            server.stop()
    print(f"workflow root -> {args.children:,} children -> join, {args.workers} workers x "
          f"{args.concurrency}: {state}; created in {created_s:.2f} s, ended after "
          f"{total_s:.1f} s")
    print(f"enqueue into another queue, before:       {summary(before)}")
    print(f"enqueue into another queue, while it ran: {summary(during)}")
    print("script calls over 1 ms while it ran (count, longest): " + _longest(slow))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--engine-only", action="store_true")
    parsed = parser.parse_args()
    asyncio.run(engine_only(parsed) if parsed.engine_only else main(parsed))
