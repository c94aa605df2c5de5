"""jobq on a 3-primary Redis Cluster against one node, and the cost of JOBQ_ACK_REPLICAS=1.

    .venv/bin/python bench/cluster.py [--jobs 5000] [--server valkey|redis]

Three queues whose slots sit on the three primaries are filled at once (64 enqueues in flight
per queue), then drained at once by one worker process (32 per queue); the same on one node.
Printed: enqueue and drain rates, Redis CPU per job on each primary (INFO cpu deltas), Redis
commands per job (INFO commandstats deltas). Then enqueue latency (p50/p99) and throughput with
JOBQ_ACK_REPLICAS 0 and 1 on the cluster (each primary has one replica). On one machine the
cluster cannot be faster (every node shares the same cores); what scales on real hardware is
the CPU per job each primary spends. Prints figures; asserts nothing.
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
from collections.abc import Callable
from pathlib import Path

import redis

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess, redis_binary, valkey_binary
from jobq.embedded_cluster import ClusterProcess
from jobq.settings import Settings
from jobq.tasks import load_registry

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from benchtasks import CLUSTER_QUEUES  # noqa: E402

TYPES = {"bench-1": "noop-1", "bench-2": "noop-2", "bench-3": "noop-3"}


# The commands jobq sends per job (each one round trip, or part of one); commandstats also
# counts the commands run inside scripts, reported apart.
ROUND_TRIP_COMMANDS = ("evalsha", "blmove", "wait", "sadd")


def node_stats(port: int) -> tuple[float, int, int]:
    """(CPU seconds used, client commands, all commands incl. those inside scripts) so far.
    Heartbeats and the bench's own progress polls are left out of the first count."""
    with redis.Redis(port=port) as r:
        cpu = r.info("cpu")
        stats = r.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    client = sum(calls.get(name, 0) for name in ROUND_TRIP_COMMANDS)
    return (float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), client,
            sum(calls.values()))


def new_settings(url: str, acks: int = 0) -> Settings:
    return Settings(redis_url=url, key_prefix=f"bench{uuid.uuid4().hex[:6]}",
                    tasks=["benchtasks"], completed_keep=1_000_000, ack_replicas=acks)


async def fill(client: Client, queues: tuple[str, ...], jobs: int, in_flight: int,
               latencies: list[float] | None = None) -> float:
    """Enqueue ``jobs`` per queue, ``in_flight`` calls outstanding per queue; jobs/s in all."""
    tag = uuid.uuid4().hex[:6]

    async def one_queue(queue: str) -> None:
        sem = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with sem:
                t = time.perf_counter()
                await client.enqueue(TYPES[queue], f"{tag}-{i}", {"n": i})
                if latencies is not None:
                    latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(one(i) for i in range(jobs)))

    started = time.perf_counter()
    await asyncio.gather(*(one_queue(q) for q in queues))
    return jobs * len(queues) / (time.perf_counter() - started)


def start_worker(settings: Settings, logdir: Path) -> subprocess.Popen[bytes]:
    """One worker process on the three queues, 32 jobs at a time each."""
    env = dict(os.environ, REDIS_URL=settings.redis_url, JOBQ_KEY_PREFIX=settings.key_prefix,
               JOBQ_TASKS="benchtasks", JOBQ_LOG_LEVEL="warning",
               JOBQ_COMPLETED_KEEP=str(settings.completed_keep), PYTHONPATH=str(BENCH))
    args = [sys.executable, "-m", "jobq", "worker", "--metrics-port", "0"]
    for queue in CLUSTER_QUEUES:
        args += ["--queue", f"{queue}:32"]
    out = (logdir / f"worker-{uuid.uuid4().hex[:4]}.log").open("wb")
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=logdir)


async def drain(client: Client, settings: Settings, jobs: int, logdir: Path) -> float:
    proc = start_worker(settings, logdir)
    total = jobs * len(CLUSTER_QUEUES)

    async def completed() -> int:
        counts = await asyncio.gather(*(client.redis.zcard(client.keys(q).completed)
                                        for q in CLUSTER_QUEUES))
        return sum(counts)

    try:
        while await completed() == 0:
            await asyncio.sleep(0.005)
        started = time.perf_counter()
        while await completed() < total:
            await asyncio.sleep(0.01)
        return total / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def run_target(name: str, url: str, primaries: list[int], jobs: int,
                     logdir: Path) -> None:
    settings = new_settings(url)
    client = Client(connect(url), load_registry(settings.tasks), settings)
    before = [node_stats(p) for p in primaries]
    enq = await fill(client, CLUSTER_QUEUES, jobs, 64)
    mid = [node_stats(p) for p in primaries]
    dr = await drain(client, settings, jobs, logdir)
    after = [node_stats(p) for p in primaries]
    await client.redis.aclose()
    total = jobs * len(CLUSTER_QUEUES)
    per_primary = total / len(primaries)
    print(f"{name}: enqueue 3 queues at once {enq:,.0f} jobs/s; drain 3 queues at once "
          f"{dr:,.0f} jobs/s ({total:,} jobs)")
    for n, port in enumerate(primaries):
        cpu_enq = (mid[n][0] - before[n][0]) / per_primary * 1e6
        cpu_all = (after[n][0] - before[n][0]) / per_primary * 1e6
        trips = (after[n][1] - before[n][1]) / per_primary
        calls = (after[n][2] - before[n][2]) / per_primary
        print(f"  primary :{port}: {per_primary:,.0f} jobs, Redis CPU {cpu_all:.0f} us/job "
              f"(enqueue {cpu_enq:.0f}, run {cpu_all - cpu_enq:.0f}), {trips:.2f} client "
              f"commands/job ({calls:.1f} with those inside scripts)")


async def ack_cost(url: str, jobs: int) -> None:
    for acks in (0, 1):
        settings = new_settings(url, acks)
        client = Client(connect(url), load_registry(settings.tasks), settings)
        latencies: list[float] = []
        rate = await fill(client, ("bench-2",), jobs, 64, latencies)
        await client.redis.aclose()
        latencies.sort()
        print(f"cluster, JOBQ_ACK_REPLICAS={acks}: enqueue {rate:,.0f} jobs/s (one queue, 64 "
              f"in flight), latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per queue")
    parser.add_argument("--server", choices=("valkey", "redis"), default="valkey")
    args = parser.parse_args()
    binary: Callable[[], Path] = valkey_binary if args.server == "valkey" else redis_binary
    logdir = Path(tempfile.mkdtemp(prefix="jobq-bench-cluster-"))
    load = os.getloadavg()[0]
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {load:.1f}, Python "
          f"{platform.python_version()}; server: {args.server}")
    single = ServerProcess(binary(), logdir / "single").start()
    try:
        await run_target("one node", single.url, [single.port], args.jobs, logdir)
    finally:
        single.stop()
    cluster = ClusterProcess(binary(), logdir / "cluster").start()
    try:
        ports = [cluster.nodes[i].port for i in range(cluster.primaries)]
        await run_target("3-primary cluster", cluster.url, ports, args.jobs, logdir)
        await ack_cost(cluster.url, args.jobs)
    finally:
        cluster.stop()




if __name__ == "__main__":
    asyncio.run(main())
