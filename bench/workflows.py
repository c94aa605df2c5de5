"""jobq workflows next to BullMQ's FlowProducer, in one run, on the same server (R24).

    .venv/bin/python bench/workflows.py                         # Valkey, 10,000 children, 3 trials
    .venv/bin/python bench/workflows.py --servers redis,valkey --children 10000 --trials 3

Rows, each a median over interleaved trials (the order of the systems alternates):
- **create**: one parent with N no-op children, no worker running: jobq ``create_workflow``
  (a chord: the children, then the parent) against one ``FlowProducer.add``; seconds.
- **parent after last child**: a worker (one process, ``--concurrency``) then drains the
  children; the parent's finish time minus the last child's, both read from the queue's
  completed set (its scores are finish times, ms, on both systems).
- **Redis CPU per node**: the server's ``used_cpu_sys + used_cpu_user`` from just before the
  creation to the parent's end, over N + 1 nodes (creation, running and the fan-in together).
- **chain overhead per step**: a worker at concurrency 1; ``--rounds`` times a 3-step chain and
  three plain jobs added in one call, each timed from just before the call to its last job's
  finish; (chain - plain) / 3. The plain jobs run back to back on the one slot, so the
  difference is what ordering them through the workflow costs.

Ratios are jobq / BullMQ oriented so that higher is better for jobq: BullMQ's figure over
jobq's for times and CPU. Jobs are no-ops on both sides (bench/benchtasks.py "noop",
bench/bullmq/bench.js's "-" body), jobq's logs at warning. Prints figures; asserts nothing; the
machine may be shared: compare ratios from one run, not absolute figures across runs. Nothing
here depends on how jobq creates a workflow inside (one call or chunks): it times the public
``create_workflow``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis as SyncRedis
from sidebyside import BULL, System, compile_bytecode, install_bullmq, redis_cpu_s, start_server
from sidebyside import stop as stop_procs

from jobq.client import Client, JobRequest
from jobq.connection import connect
from jobq.settings import Settings
from jobq.tasks import load_registry
from jobq.workflows import Node, chain, chord, group

QUEUE = "bench-queue"  # benchtasks' "noop"
POLL_S = 0.002


def completed_key(system: System, ns: str) -> str:
    return f"bull:{ns}:completed" if system.is_bull else f"{ns}:{{{QUEUE}}}:completed"


def client_for(url: str, ns: str, keep: int) -> Client:
    settings = Settings(redis_url=url, key_prefix=ns, tasks=["benchtasks"], completed_keep=keep)
    return Client(connect(url), load_registry(settings.tasks), settings)


async def jobq_create(url: str, ns: str, children: int) -> tuple[float, str]:
    client = client_for(url, ns, children + 10)
    try:
        spec = chord(group(*(Node(f"c{i}", "noop") for i in range(children))),
                     Node("parent", "noop"))
        started = time.perf_counter()
        created = await client.create_workflow("fan-in", spec)
        return time.perf_counter() - started, created.jobs["parent"]
    finally:
        await client.redis.aclose()


def bull_create(url: str, ns: str, children: int) -> tuple[float, str]:
    out = subprocess.run(["node", str(BULL / "flows.js"), "fanin", url, ns, str(children)],
                         check=True, capture_output=True, text=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return float(answer["seconds"]), str(answer["parentId"])


def fan_in(system: System, url: str, children: int, concurrency: int,
           logdir: Path) -> tuple[float, float, float]:
    """(create s, parent end - last child end in ms, Redis CPU ms per node)."""
    r = SyncRedis.from_url(url, decode_responses=True)
    ns = f"wfb{uuid.uuid4().hex[:8]}"
    cpu_before = redis_cpu_s(r)
    if system.is_bull:
        create_s, parent = bull_create(url, ns, children)
    else:
        create_s, parent = asyncio.run(jobq_create(url, ns, children))
    proc = system.worker(url, ns, children + 10, concurrency,
                         logdir / f"{system.label}-{ns}.log", "noop")
    key = completed_key(system, ns)
    try:
        deadline = time.monotonic() + 120 + children / 50
        while r.zscore(key, parent) is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{system.label}: the parent did not complete (logs in "
                                   f"{logdir})")
            time.sleep(POLL_S)
        cpu = redis_cpu_s(r) - cpu_before
        scores = dict(r.zrange(key, 0, -1, withscores=True))
        parent_end = scores.pop(parent)
        if len(scores) != children:
            raise RuntimeError(f"{system.label}: {len(scores)} children completed, not "
                               f"{children}")
        gap_ms = parent_end - max(scores.values())
    finally:
        stop_procs([proc])
        r.flushall()
        r.close()
    return create_s, gap_ms, cpu / (children + 1) * 1000


async def jobq_steps(url: str, ns: str, rounds: int) -> tuple[list[float], list[float]]:
    client = client_for(url, ns, 1000)
    r = client.redis
    key = f"{ns}:{{{QUEUE}}}:completed"

    async def finished(job_id: str) -> float:
        while (score := await r.zscore(key, job_id)) is None:
            await asyncio.sleep(POLL_S)
        return float(score)

    chains: list[float] = []
    plains: list[float] = []
    try:
        for n in range(rounds):
            t0 = time.time() * 1000
            created = await client.create_workflow(
                f"chain{n}", chain(Node("s1", "noop"), Node("s2", "noop"), Node("s3", "noop")))
            chains.append(await finished(created.jobs["s3"]) - t0)
            t0 = time.time() * 1000
            results = await client.enqueue_many(
                [JobRequest("noop", f"plain{n}-{i}", {}) for i in range(3)])
            ends = [await finished(res.job_id) for res in results
                    if not isinstance(res, Exception)]
            plains.append(max(ends) - t0)
    finally:
        await r.aclose()
    return chains, plains


def steps(system: System, url: str, rounds: int, logdir: Path) -> tuple[float, float, float]:
    """(chain ms, plain ms, overhead per step ms): medians over ``rounds``."""
    r = SyncRedis.from_url(url)
    ns = f"wfs{uuid.uuid4().hex[:8]}"
    proc = system.worker(url, ns, 1000, 1, logdir / f"{system.label}-{ns}.log", "noop")
    try:
        if system.is_bull:
            out = subprocess.run(["node", str(BULL / "flows.js"), "steps", url, ns, str(rounds)],
                                 check=True, capture_output=True, text=True)
            answer = json.loads(out.stdout.strip().splitlines()[-1])
            chains, plains = answer["chain"], answer["plain"]
        else:
            chains, plains = asyncio.run(jobq_steps(url, ns, rounds))
    finally:
        stop_procs([proc])
        r.flushall()
        r.close()
    c, p = statistics.median(chains), statistics.median(plains)
    return c, p, (c - p) / 3


ROWS = {  # row -> (format, higher is better)
    "create, s": ("{:.3f}", False),
    "parent done after last child, ms": ("{:.1f}", False),
    "Redis CPU per node, ms": ("{:.4f}", False),
    "3-step chain, ms (create -> last end)": ("{:.1f}", False),
    "3 plain jobs, ms (enqueue -> last end)": ("{:.1f}", False),
    "chain overhead per step, ms": ("{:.1f}", False),
}


def add(rows: dict[str, dict[str, list[float]]], row: str, label: str, value: float) -> None:
    rows[row].setdefault(label, []).append(value)


def print_table(title: str, labels: list[str], rows: dict[str, dict[str, list[float]]]) -> None:
    """One column per system, then each jobq column's ratio to BullMQ, oriented so that
    higher is better for jobq (for times and CPU: BullMQ's figure over jobq's)."""
    ours = [label for label in labels if label != "bullmq"]
    print(f"\n{title}\n")
    print(f"| | {' | '.join(labels)} | "
          + " | ".join(f"{label} vs bullmq (higher: {label} better)" for label in ours) + " |")
    print("|---|" + "---:|" * (len(labels) + len(ours)))
    for row, per in rows.items():
        fmt, higher_better = ROWS[row]
        med = {label: statistics.median(per[label]) for label in labels}
        b = med["bullmq"]
        ratios = []
        for label in ours:
            j = med[label]
            ratio = (j / b if b else float("nan")) if higher_better else (
                b / j if j > 0 else float("nan"))
            ratios.append(f"{ratio:.2f}")
        cells = " | ".join(fmt.format(med[label]) for label in labels)
        print(f"| {row} | {cells} | {' | '.join(ratios)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="worker concurrency of the fan-in rows (one process each)")
    parser.add_argument("--rounds", type=int, default=20, help="chains per trial")
    parser.add_argument("--servers", default="valkey")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--poll-s", type=float,
                        help="also jobq with JOBQ_WORKFLOW_POLL_S at this value (the relay's "
                             "idle look at the outbox; default 0.05)")
    parser.add_argument("--wake-off", action="store_true",
                        help="also jobq with JOBQ_WORKFLOW_WAKE=false (relays only poll: no "
                             "wake-up from the outbox's wake list)")
    args = parser.parse_args()
    install_bullmq()
    logdir = Path(tempfile.mkdtemp(prefix="jobq-wfb-"))
    systems = [System("jobq"), System("bullmq")]
    if args.poll_s is not None:
        systems.insert(1, System(f"jobq poll {args.poll_s:g}s",
                                 extra_env={"JOBQ_WORKFLOW_POLL_S": str(args.poll_s)}))
    if args.wake_off:
        systems.insert(1, System("jobq wake off", extra_env={"JOBQ_WORKFLOW_WAKE": "false"}))
    for s in systems:
        compile_bytecode(s, logdir)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    bull = json.loads((BULL / "node_modules" / "bullmq" / "package.json").read_text())["version"]
    print(f"machine: {platform.node()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; "
          f"Python {platform.python_version()}, Node {node}, BullMQ {bull}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    for kind in args.servers.split(","):
        url, stop_server, name = start_server(kind, logdir)
        rows: dict[str, dict[str, list[float]]] = {row: {} for row in ROWS}

        try:
            for trial in range(args.trials):
                order = systems if trial % 2 == 0 else systems[::-1]
                for s in order:
                    create_s, gap_ms, cpu_ms = fan_in(s, url, args.children, args.concurrency,
                                                      logdir)
                    add(rows, "create, s", s.label, create_s)
                    add(rows, "parent done after last child, ms", s.label, gap_ms)
                    add(rows, "Redis CPU per node, ms", s.label, cpu_ms)
                for s in order:
                    c, p, per_step = steps(s, url, args.rounds, logdir)
                    add(rows, "3-step chain, ms (create -> last end)", s.label, c)
                    add(rows, "3 plain jobs, ms (enqueue -> last end)", s.label, p)
                    add(rows, "chain overhead per step, ms", s.label, per_step)
        finally:
            stop_server()
        print_table(f"{name}: a parent with {args.children:,} children (1 worker process x "
                    f"{args.concurrency}), chains at concurrency 1 x {args.rounds} rounds; "
                    f"median of {args.trials} interleaved trial(s)",
                    [sy.label for sy in systems], rows)
        print(f"load after: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
