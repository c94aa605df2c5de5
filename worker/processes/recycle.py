"""Worker recycling, for every executor: after ``max_jobs`` jobs, or once the worker's own
memory passes ``max_rss_mb``, stop claiming, finish or hand back what runs, exit 0, and let
Kubernetes start a fresh container (a slow leak's remedy without a person)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jobq.logs import get_logger
from jobq.settings import Settings
from jobq.shutdown import wait_event
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.processes.protocol import rss_bytes

log = get_logger("jobq.worker")

RSS_CHECK_S = 1.0  # how often the worker's memory is read
MiB = 1024 * 1024


class Recycler:
    """Counts ended jobs and watches memory; calls ``on_due`` once, when either limit is hit."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics,
                 on_due: Callable[[], None]) -> None:
        self.max_jobs = settings.max_jobs
        self.max_rss = settings.max_rss_mb * MiB
        self.metrics = metrics
        self.on_due = on_due
        self.jobs = 0
        self.due: str | None = None
        self._stopped = asyncio.Event()

    def job_ended(self) -> None:
        """One job's attempt ended here (completed, failed, cancelled or handed back)."""
        self.jobs += 1
        if self.max_jobs and self.jobs >= self.max_jobs:
            self._recycle("max_jobs", rss_bytes())

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        """Read the worker's memory every RSS_CHECK_S until stopped or due."""
        while self.max_rss and self.due is None and not self._stopped.is_set():
            rss = rss_bytes()
            if rss > self.max_rss:
                self._recycle("max_rss", rss)
                return
            await wait_event(self._stopped, RSS_CHECK_S)

    def _recycle(self, reason: str, rss: int) -> None:
        if self.due is not None:
            return
        self.due = reason
        self.metrics.recycles.labels(reason).inc()
        log.info("worker.recycling", reason=reason, jobs=self.jobs, rssMb=round(rss / MiB, 1),
                 maxJobs=self.max_jobs, maxRssMb=self.max_rss // MiB)
        self.on_due()
