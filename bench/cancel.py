"""Cancel latency of a running job: from ``POST``-equivalent ``cancel`` to the job's state
``cancelled``, through a real worker process. Prints figures; asserts nothing.

    .venv/bin/python bench/cancel.py [--trials 10] [--lease 30]
    .venv/bin/python bench/cancel.py --baseline HEAD~1   # also a worker at another commit

Starts the embedded Valkey (unless REDIS_URL is set) and one ``jobq worker`` per system on
``report-queue`` with the demo ``flaky`` task sleeping 600 s; each trial enqueues one job,
awaits ``active``, cancels it through ``jobq.admin.cancel_job`` and polls its state every 5 ms.
The systems alternate trial by trial, so both see the same machine load.
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
import uuid
from pathlib import Path

from sidebyside import baseline_tree

from jobq import admin
from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess, valkey_binary
from jobq.jobs import State
from jobq.logs import configure_logging
from jobq.settings import Settings
from jobq.tasks import load_registry

POLL_S = 0.005  # state polling interval (the resolution of the figures)
START_WAIT_S = 30.0  # a job not active after this long fails the trial


def start_worker(
    redis_url: str, prefix: str, lease_s: float, pythonpath: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(REDIS_URL=redis_url, JOBQ_KEY_PREFIX=prefix, JOBQ_TASKS="jobq.demo",
               JOBQ_LOG_LEVEL="warning", JOBQ_LEASE_S=str(lease_s))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.Popen([sys.executable, "-m", "jobq", "worker", "--queue", "report-queue:1",
                             "--metrics-port", "0"], env=env, cwd=tempfile.gettempdir(),
                            stdout=subprocess.DEVNULL)


async def state_is(client: Client, job_id: str, state: State, timeout_s: float) -> float:
    """Seconds until the job is in ``state`` (polled)."""
    started = time.perf_counter()
    while (await client.get_job(job_id)).state is not state:
        if time.perf_counter() - started > timeout_s:
            raise SystemExit(f"job {job_id} not {state.value} after {timeout_s} s")
        await asyncio.sleep(POLL_S)
    return time.perf_counter() - started


async def trial(client: Client, n: int, lease_s: float) -> float:
    job = await client.enqueue("flaky", f"cancel-bench-{n}-{uuid.uuid4().hex[:6]}",
                               {"sleepSeconds": 600})
    await state_is(client, job.job_id, State.ACTIVE, START_WAIT_S)
    started = time.perf_counter()
    await admin.cancel_job(client, job.job_id, who="bench")
    await state_is(client, job.job_id, State.CANCELLED, lease_s)
    return time.perf_counter() - started


async def measure(args: argparse.Namespace, redis_url: str) -> None:
    systems = {"this tree": ""}
    if args.baseline:
        systems[args.baseline] = baseline_tree(
            args.baseline, Path(tempfile.mkdtemp(prefix="bench-cancel-baseline-")))
    registry = load_registry(["jobq.demo"])
    setups = {}
    for name, pythonpath in systems.items():
        settings = Settings(redis_url=redis_url, key_prefix=f"bc{uuid.uuid4().hex[:8]}",
                            tasks=["jobq.demo"], lease_s=args.lease)
        setups[name] = (Client(connect(redis_url), registry, settings),
                        start_worker(redis_url, settings.key_prefix, args.lease, pythonpath))
    print(f"lease {args.lease} s (regular renewal every {args.lease / 3:.1f} s), "
          f"load average {os.getloadavg()[0]:.2f} (2 cores shared)", flush=True)
    samples: dict[str, list[float]] = {name: [] for name in systems}
    try:
        for n in range(args.trials):
            for name, (client, _) in setups.items():
                samples[name].append(await trial(client, n, args.lease) * 1000)
        for name, values in samples.items():
            print(f"  {name:<12} cancel -> cancelled: p50 {statistics.median(values):8.1f} ms  "
                  f"max {max(values):8.1f} ms  ({len(values)} trials)", flush=True)
    finally:
        for client, worker in setups.values():
            worker.terminate()
            worker.wait(timeout=30)
            await client.redis.aclose()


def main(args: argparse.Namespace) -> None:
    configure_logging("warning")  # the cancel's own log line is not a figure
    redis_url = os.environ.get("REDIS_URL")
    server = None
    if not redis_url:
        server = ServerProcess(valkey_binary(), Path(tempfile.mkdtemp(prefix="bench-redis-")))
        server.start()
        redis_url = server.url
    try:
        asyncio.run(measure(args, redis_url))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--lease", type=float, default=30.0, help="JOBQ_LEASE_S of the workers")
    parser.add_argument("--baseline", metavar="REF", help="also measure a worker at this commit")
    main(parser.parse_args())
