"""R9 under fire: SIGTERM a loaded worker at random moments, over and over.

Each cycle starts a real worker on a queue of its own (own key prefix) with a backlog, a few
delayed jobs and a producer trickling more in, then sends SIGTERM at a random moment: just
after start (first claims), mid-drain (claims and batched completions in flight), or once the
backlog is gone (the fetcher blocking on the empty queue, woken by the trickle). Every worker
must exit on its own, cleanly and within the bound; every job must have run at most once, every
completed job exactly once, and every job it had not finished must be back in ``waiting`` with
its attempt unspent (none left ``active``). Cycles run several at a time so the test stays short.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures import events, eventually, process_env
from forkedworkers import ForkedProc, Forker
from redis.asyncio import Redis

from jobq.client import Client
from jobq.jobs import State, job_from_hash
from jobq.keys import QueueKeys
from jobq.settings import Settings
from jobq.tasks import load_registry

QUEUE = "stress-queue"
CYCLES = 36  # per concurrency: 108 cycles per server
PARALLEL = 6  # cycles at once
GRACE_S = 1.0  # every job of these cycles takes far less: none should need cancelling
EXIT_BOUND_S = GRACE_S + 10.0  # the grace plus a small constant, whatever the timing
PHASES = ("start", "busy", "busy", "idle")
FALLBACK_EVENTS = ("worker.tasks_left_running", "worker.lease_renewer_stuck",
                   "worker.flush_incomplete", "worker.handback_failed", "worker.shutdown_stuck",
                   "job.lease_lost", "job.worker_error", "worker.ack_error")


@pytest.fixture
def forker(tmp_path: Path) -> Iterator[Forker]:
    forker = Forker(tmp_path)
    yield forker
    forker.close()


@dataclass
class Cycle:
    number: int
    phase: str
    settings: Settings
    client: Client
    rng: random.Random
    effects: Path
    job_ids: list[str] = field(default_factory=list)

    @property
    def keys(self) -> QueueKeys:
        return QueueKeys(self.settings.key_prefix, QUEUE)

    async def enqueue(self, *, delay_s: float = 0.0) -> None:
        seconds = self.rng.choice([0.0, 0.0, 0.0, 0.002, 0.02])
        key = f"c{self.number}-{len(self.job_ids)}"
        result = await self.client.enqueue("record", key, {"seconds": seconds}, delay_s=delay_s)
        self.job_ids.append(result.job_id)

    async def trickle(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.enqueue()
            await asyncio.sleep(self.rng.uniform(0.002, 0.03))


async def _run_cycle(cycle: Cycle, forker: Forker, redis: Redis, concurrency: int) -> str | None:
    """One start-load-SIGTERM cycle; None when every check held, else what went wrong."""
    rng = cycle.rng
    backlog = rng.choice([0, 30] if cycle.phase == "idle" else [0, 30, 200, 600])
    for _ in range(backlog):
        await cycle.enqueue()
    for _ in range(3):
        await cycle.enqueue(delay_s=rng.uniform(0.05, 1.0))
    worker = forker.start(
        ["worker", "--queue", f"{QUEUE}:{concurrency}", "--metrics-port", "0"],
        process_env(cycle.settings, JOBQ_TEST_EFFECTS_FILE=str(cycle.effects)), name=f"worker-{cycle.number}",
    )
    stop_trickle = asyncio.Event()
    producer = asyncio.create_task(cycle.trickle(stop_trickle))
    try:
        await eventually(lambda: _async(bool(events(worker, "worker.started"))), timeout=60,
                         what=f"cycle {cycle.number}: worker to start")
        if cycle.phase == "start":
            await asyncio.sleep(rng.uniform(0, 0.05))
        elif cycle.phase == "busy":
            await asyncio.sleep(rng.uniform(0, 0.4))
        else:
            async def drained() -> bool:
                return await redis.llen(cycle.keys.wait) == 0
            await eventually(drained, timeout=60, what=f"cycle {cycle.number}: backlog drained")
            await asyncio.sleep(rng.uniform(0, 0.3))
        worker.terminate()
        signalled = time.monotonic()
        code = await _exit_code(worker, EXIT_BOUND_S)
        took_s = time.monotonic() - signalled
    finally:
        stop_trickle.set()
        await producer
    where = f"cycle {cycle.number} ({cycle.phase}, c={concurrency}, log {worker.log.name})"
    if code is None:
        worker.kill9()
        return f"{where}: still running {EXIT_BOUND_S}s after SIGTERM (killed)"
    problems = []
    if code != 0:
        problems.append(f"exit code {code}")
    if not events(worker, "worker.stopped"):
        problems.append("no worker.stopped")
    # The orderly path did the work, not a fallback. (worker.fetch_stop_slow is allowed: on a
    # loaded machine a claim can outlast the second the flag is given; cancelling follows.)
    for fallback in FALLBACK_EVENTS:
        if found := events(worker, fallback):
            problems.append(f"{fallback}: {found[0]}")
    problems += await _job_problems(cycle, redis, worker)
    if problems:
        return f"{where}, exited after {took_s:.1f}s: " + "; ".join(problems[:5])
    return None


async def _job_problems(cycle: Cycle, redis: Redis, worker: ForkedProc) -> list[str]:
    outbox = cycle.effects
    lines = outbox.read_text().splitlines() if outbox.exists() else []
    runs = Counter(line.split()[0] for line in lines)
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in cycle.job_ids:
            pipe.hgetall(cycle.keys.job(job_id))
        raws = await pipe.execute()
    problems = []
    if leased := await redis.zcard(cycle.keys.active):
        problems.append(f"{leased} job(s) left active (not handed back)")
    states: dict[str, State] = {}
    for job_id, raw in zip(cycle.job_ids, raws, strict=True):
        job = job_from_hash(raw)
        states[job_id] = job.state
        ran = runs[job_id]
        if job.state is State.COMPLETED:
            outcomes = [h.outcome for h in job.history]
            if ran != 1 or job.attempts != 1 or outcomes != ["completed"]:
                problems.append(f"{job_id} completed: ran {ran}x, attempts {job.attempts}, "
                                f"history {outcomes}")
        elif job.state in (State.WAITING, State.DELAYED):
            if ran != 0 or job.attempts != 0:
                problems.append(f"{job_id} {job.state.value}: ran {ran}x, "
                                f"attempts {job.attempts} (finished run lost or attempt spent)")
        else:
            problems.append(f"{job_id} {job.state.value} (ran {ran}x)")
    handed_back = {job_id: [h.outcome for h in job_from_hash(raw).history]
                   for job_id, raw in zip(cycle.job_ids, raws, strict=True)}
    for event in events(worker, "job.handed_back"):
        if states.get(event["jobId"]) is not State.WAITING:
            problems.append(f"{event['jobId']} handed back but {states.get(event['jobId'])}")
        elif handed_back.get(event["jobId"]) != ["handed-back"]:
            problems.append(f"{event['jobId']} handed back, history {handed_back.get(event['jobId'])}")
    return problems


async def _exit_code(worker: ForkedProc, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while (code := worker.exitcode()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return code


async def _async(value: bool) -> bool:
    return value


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("concurrency", [1, 4, 64])
async def test_sigterm_at_random_moments_loses_nothing_and_always_exits(
    concurrency: int, settings: Settings, redis: Redis, forker: Forker, tmp_path: Path
) -> None:
    seed = int(os.environ.get("JOBQ_TEST_SEED", random.randrange(1 << 30)))
    master = random.Random(seed)
    tasks = [*settings.tasks, "stresstasks"]
    registry = load_registry(tasks)
    slots = asyncio.Semaphore(PARALLEL)

    async def one(number: int) -> str | None:
        own = settings.model_copy(update={
            "key_prefix": f"{settings.key_prefix}-{number}", "tasks": tasks,
            "shutdown_grace_s": GRACE_S,
        })
        cycle = Cycle(number, PHASES[number % len(PHASES)], own, Client(redis, registry, own),
                      random.Random(master.random()), tmp_path / f"outbox-{number}.txt")
        async with slots:
            return await _run_cycle(cycle, forker, redis, concurrency)

    results = await asyncio.gather(*(one(n) for n in range(CYCLES)))
    failures = [r for r in results if r is not None]
    assert not failures, (f"seed {seed}: {len(failures)} of {CYCLES} cycles failed:\n"
                          + "\n".join(failures))
