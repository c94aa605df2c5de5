"""What jobq.testing costs a test: a ``JobqEnv`` started, one typed job enqueued and drained
and the environment stopped (what one ``jobq_env`` test does), and one ``run_task`` call.

    .venv/bin/python bench/testkit.py [--cycles 30]

Embedded Valkey, started once (the plugin starts it once per session); prints the median and
the 90th percentile wall time per cycle in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from jobq import JobContext, task
from jobq.embedded import ServerProcess, valkey_binary
from jobq.testing import JobqEnv, run_task


class Ping(BaseModel):
    n: int


class Pong(BaseModel):
    n: int


@task("kit-bench", queue="kit-bench", payload=Ping, result=Pong)
async def pong(ctx: JobContext, payload: Ping) -> Pong:
    return Pong(n=payload.n)


def summary(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[int(len(ms) * 0.9) - 1]
    return f"{label}: median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms ({len(ms)} runs)"


async def cycles(url: str, count: int) -> tuple[list[float], list[float]]:
    env_times: list[float] = []
    direct: list[float] = []
    for i in range(count):
        started = time.perf_counter()
        async with JobqEnv.start(url, [pong]) as env:
            handle = await env.enqueue(pong, f"k{i}", Ping(n=i))
            await env.drain()
            assert (await handle.result(timeout=5)).n == i
        env_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert (await run_task(pong, Ping(n=i))).result.n == i
        direct.append(time.perf_counter() - started)
    return env_times, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(valkey_binary(), Path(data)).start()
        try:
            env_times, direct = asyncio.run(cycles(server.url, args.cycles))
        finally:
            server.stop()
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
    print(summary("jobq_env test (start, enqueue, drain, result, stop)", env_times))
    print(summary("run_task call", direct))


if __name__ == "__main__":
    main()
