"""Maintenance every worker runs for each of its queues: take back jobs whose lease expired
(R4) and publish a heartbeat with the in-flight count (read by the operator's scale-down).

Safe to run from every worker at once: ``reclaim`` hands each expired job to one sweeper only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from jobq import keys
from jobq.connection import REDIS_DOWN, redis_now_ms, result_of
from jobq.jobs import Backoff, dumps, loads
from jobq.logs import get_logger
from jobq.shutdown import wait_event
from jobq.tracing import quiet
from jobq.worker.runner import QueueRunner

log = get_logger("jobq.worker.sweeper")

LEAVE_TIMEOUT_S = 0.5  # removing the heartbeat at shutdown, at most


class Sweeper:
    def __init__(self, runner: QueueRunner) -> None:
        self.runner = runner
        self.interval_s = max(0.25, min(runner.settings.lease_s / 2, keys.HEARTBEAT_S))
        self.pod = os.environ.get("POD_NAME") or socket.gethostname()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """End ``run()`` at its next turn (it does not rely on being cancelled)."""
        self._stopping.set()

    async def run(self) -> None:
        quiet.suppress()  # sweeps and heartbeats are plumbing: no spans (R25)
        next_beat = 0.0
        while not self._stopping.is_set():
            try:
                await self.sweep()
                if asyncio.get_running_loop().time() >= next_beat:
                    await self.heartbeat()
                    next_beat = asyncio.get_running_loop().time() + keys.HEARTBEAT_S
            except REDIS_DOWN as exc:
                log.warning("worker.redis_unavailable", queue=self.runner.spec.name,
                            error=str(exc))
            except Exception:
                log.exception("worker.sweep_error", queue=self.runner.spec.name)
            await wait_event(self._stopping, self.interval_s)

    async def sweep(self) -> None:
        r = self.runner
        lease_ms = int(r.settings.lease_s * 1000)
        for lost in await r.scripts.reclaim(r.keys, lease_ms, r.worker_id, keys.RECLAIM_BATCH):
            job_log = log.bind(jobId=lost.job_id, queue=r.spec.name, type=lost.type,
                               attempt=lost.attempt, worker=lost.previous_worker)
            job_log.warning("job.stalled", sweptBy=r.worker_id)
            r.metrics.lost.labels(r.spec.name, lost.type).inc()
            delay_s = Backoff.model_validate_json(lost.backoff).delay_s(lost.attempt)
            reason = f"worker lost: lease expired (worker {lost.previous_worker or 'unknown'})"
            await r.finisher.end_attempt(job_log, lost.job_id, lost.token, lost.type, reason,
                                         delay_s, permanent=False, label="lost")

    async def heartbeat(self) -> None:
        r = self.runner
        now = await redis_now_ms(r.scripts.redis)  # one clock with the operator's reads
        beat = {"pod": self.pod, "pid": os.getpid(), "inflight": len(r.running),
                "concurrency": r.spec.concurrency, "seenAt": now}
        await result_of(r.scripts.redis.hset(r.keys.workers, r.worker_id, dumps(beat)))
        beats = await result_of(r.scripts.redis.hgetall(r.keys.workers))
        stale = [
            worker for worker, raw in beats.items()
            if now - int(loads(raw).get("seenAt", 0)) > keys.HEARTBEAT_STALE_S * 1000
        ]
        if stale:
            await result_of(r.scripts.redis.hdel(r.keys.workers, *stale))

    async def leave(self) -> None:
        """Remove this worker's heartbeat on a clean exit (it goes stale anyway if this fails)."""
        r = self.runner
        with contextlib.suppress(*REDIS_DOWN, TimeoutError):
            async with asyncio.timeout(LEAVE_TIMEOUT_S):
                await result_of(r.scripts.redis.hdel(r.keys.workers, r.worker_id))
