"""A real QueueRunner in the test's own event loop, for tests that need to look inside the
worker (its slots, running attempts and lease table) while it runs against a real server.

The same pieces ``jobq.worker.main.run_worker`` wires: the runner's fetch loop and finishers,
and (with ``renew=True``) the lease thread wired by ``lease_renewer``. Tests that only watch a
worker from outside start a real process instead (``start_worker`` in fixtures.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fixtures import eventually

from jobq.connection import Redis, connect
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.tracing import quiet
from jobq.worker.leases import LeaseRenewer, LeaseTable
from jobq.worker.main import lease_renewer
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.runner import QueueRunner, QueueSpec
from jobq.worker.sweeper import Sweeper

STOP_S = 3.0  # the runner's loops get this long to end after the test

@dataclass
class InProcessWorker:
    runner: QueueRunner
    leases: LeaseTable
    metrics: WorkerMetrics
    redis: Redis
    loop_errors: list[dict[str, Any]] = field(default_factory=list)
    """What reached the event loop's exception handler (e.g. "Task exception was never
    retrieved"): a runner task that crashed."""

    def free_slots(self) -> int:
        return sum(lane.slots - lane.running for lane in self.runner.lanes)

    def busy_slots(self) -> int:
        return sum(lane.running for lane in self.runner.lanes)

    async def all_slots_free(self) -> None:
        """Wait until no job runs and every slot is free again (a leaked slot never is)."""

        async def free() -> bool:
            return self.busy_slots() == 0 and not self.runner.running

        await eventually(free, timeout=5, what="every slot to be free again")


@asynccontextmanager
async def in_process_worker(
    settings: Settings, registry: Registry, queue: str, concurrency: int, *,
    renew: bool = False, worker_id: str = "w1", sweep: bool = False,
    tracer_provider: Any = None,
) -> AsyncIterator[InProcessWorker]:
    """Run one queue's runner until the block ends; then stop it as a shutdown would.
    ``sweep``: its sweeper (stall sweeps, heartbeats) runs too."""
    loop = asyncio.get_running_loop()
    redis = connect(settings.redis_url)
    scripts = Scripts(redis)
    with quiet.quietly():  # start-up is plumbing, as in run_worker (R25)
        await scripts.load()
    leases = LeaseTable()
    metrics = WorkerMetrics()
    runner = QueueRunner(QueueSpec(queue, concurrency), worker_id, settings, registry, scripts,
                         leases, metrics, tracer_provider=tracer_provider)
    worker = InProcessWorker(runner, leases, metrics, redis)
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: worker.loop_errors.append(context))
    renewer: LeaseRenewer | None = None
    if renew:
        renewer = lease_renewer(settings, leases, [runner], loop)
        renewer.start()
    tasks = [asyncio.create_task(runner.fetch()),
             *(asyncio.create_task(f.run()) for f in runner.finishers)]
    sweeper = Sweeper(runner) if sweep else None
    if sweeper is not None:
        tasks.append(asyncio.create_task(sweeper.run()))
    try:
        yield worker
    finally:
        runner.stop()
        if sweeper is not None:
            sweeper.stop()
        await runner.drain(loop.time() + STOP_S)
        for finisher in runner.finishers:
            await finisher.close()
        _, left = await asyncio.wait(tasks, timeout=STOP_S)
        for task in left:
            task.cancel()
        if renewer is not None:
            renewer.stop()
        await redis.aclose()
        loop.set_exception_handler(previous_handler)
