"""Ending attempts: completions batched into one fenced script call, failures one by one.

Completions pile up while a batch is in flight and go together in the next call, so under load
one round trip acknowledges many jobs, and when idle each job is acknowledged at once. While the
queue's fetch loop is about to claim (it waits for the slot a completion frees, or its claim is
in flight), its claim carries the completions instead (``take``/``settle``, one script call for
both), so a job costs one round trip; whenever it stops claiming it wakes this writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from jobq.connection import REDIS_DOWN, retrying
from jobq.context import JobContext
from jobq.errors import LeaseLost
from jobq.jobs import Backoff
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.scripts import Claimed, Scripts
from jobq.settings import Settings
from jobq.shutdown import wait_event
from jobq.tracing import quiet
from jobq.worker.execute import Outcome
from jobq.worker.leases import LeaseTable
from jobq.worker.metrics import WorkerMetrics

log = get_logger("jobq.worker")

ACK_BATCH = 500  # most completions per script call (bounds the time one script holds Redis)
IDLE_WAKE_S = 1.0  # the flush loop looks again at least this often, woken or not


@dataclass(slots=True)
class Finished:
    claimed: Claimed
    ctx: JobContext
    outcome: Outcome


class Finisher:
    """Writes the end of every attempt of one queue back to Redis."""

    def __init__(
        self, keys: QueueKeys, scripts: Scripts, settings: Settings, leases: LeaseTable,
        metrics: WorkerMetrics, on_retry_scheduled: Callable[[], None],
        claims_next: Callable[[], bool] = lambda: False,
    ) -> None:
        self.keys = keys
        self.scripts = scripts
        self.settings = settings
        self.leases = leases
        self.metrics = metrics
        self.on_retry_scheduled = on_retry_scheduled
        self.claims_next = claims_next  # True: the fetch loop's next claim carries completions
        self._pending: list[Finished] = []
        self._wake = asyncio.Event()
        self._closing = False

    def _persist(self) -> tenacity.AsyncRetrying:
        """A new retrier for each write: ``_flush`` and ``end_attempt`` run concurrently, and
        one shared instance lets one loop's success end another's without its write.
        Keeps trying through a blip, but not past the lease: by then the job is reclaimed."""
        return retrying(give_up_after_s=self.settings.lease_s, max_wait_s=1.0)

    def complete(self, done: Finished) -> None:
        self._pending.append(done)
        if not self.claims_next():
            self._wake.set()

    def wake(self) -> None:
        """Write what is pending now: the fetch loop stopped claiming, or gave a batch back."""
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self, most: int) -> list[Finished]:
        """Up to ``most`` pending completions, for a claim to carry; their leases leave the
        table first (a renewal racing the write must not report a lost lease)."""
        batch, self._pending = self._pending[:most], self._pending[most:]
        for done in batch:
            self.leases.discard(self.keys.queue, done.claimed.job_id, done.claimed.token)
        return batch

    def give_back(self, batch: list[Finished]) -> None:
        """A carrying claim failed: its completions go first in line, written with retries."""
        self._pending[:0] = batch
        self._wake.set()

    @staticmethod
    def triples(batch: list[Finished]) -> list[tuple[str, str, str]]:
        return [(d.claimed.job_id, d.claimed.token, d.outcome.result_json) for d in batch]

    def settle(self, batch: list[Finished], results: list[bool]) -> None:
        """Count and log a written batch: completed, or refused for a lost lease."""
        for done, ok in zip(batch, results, strict=True):
            self._completed(done) if ok else done.ctx.log.warning("job.lease_lost")

    async def run(self) -> None:
        """Flush completions until closed and nothing is left."""
        quiet.suppress()  # batched acks are plumbing: no spans from their Redis calls (R25)
        while True:
            await wait_event(self._wake, IDLE_WAKE_S)
            self._wake.clear()
            if self.claims_next() and not self._closing:
                continue  # the next claim carries them; the fetch loop wakes us if it does not
            while self._pending:
                batch = self.take(ACK_BATCH)
                try:
                    await self._flush(batch)
                except Exception:
                    # Unrecorded completions are taken back by the stall sweep and retried.
                    log.exception("worker.ack_error", queue=self.keys.queue, jobs=len(batch))
            if self._closing:
                return

    async def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def _flush(self, batch: list[Finished]) -> None:
        """Write one batch from ``take`` (its leases already out of the table), with retries."""
        triples = self.triples(batch)
        try:
            async for attempt in self._persist():
                with attempt:
                    results = await self.scripts.complete(
                        self.keys, self.settings.completed_keep,
                        self.settings.completed_max_age_s * 1000, triples,
                    )
        except REDIS_DOWN as exc:
            for done in batch:
                done.ctx.log.error("job.ack_failed", error=str(exc))
            return
        self.settle(batch, results)

    def _completed(self, done: Finished) -> None:
        series = self.metrics.of(self.keys.queue, done.claimed.type)
        series.completed.inc()
        series.duration.observe(done.outcome.duration_s)
        if done.claimed.attempt > 1:
            # Handed-back attempts are un-spent, so attempt > 1 means an earlier one failed.
            series.recovered.inc()
            done.ctx.log.info("job.completed_recovered", durationS=done.outcome.duration_s)
        else:
            done.ctx.log.info("job.completed", durationS=done.outcome.duration_s)

    async def fail(self, done: Finished) -> tuple[str, float]:
        """End a failed attempt: backoff then retry, or dead-letter (R5, R6). Says how it
        ended (``end_attempt``) and the retry delay."""
        c, outcome = done.claimed, done.outcome
        self.leases.discard(self.keys.queue, c.job_id, c.token)  # not a later attempt's lease
        delay_s = outcome.retry_delay_s
        if delay_s is None:
            delay_s = Backoff.model_validate_json(c.backoff).delay_s(c.attempt)
        self.metrics.attempts_failed.labels(self.keys.queue, c.type).inc()
        ended = await self.end_attempt(
            done.ctx.log, c.job_id, c.token, c.type, outcome.reason, delay_s,
            permanent=outcome.permanent, label=outcome.history_label)
        return ended, delay_s

    async def end_attempt(
        self, log: Any, job_id: str, token: str, task_type: str, reason: str, delay_s: float, *,
        permanent: bool, label: str,
    ) -> str:
        """Write a failed or lost attempt; shared by handler failures and the stall sweep.
        Says how it ended (a trace's ``jobq.outcome``): retry, dlq, cancelled, lease_lost or
        unrecorded."""
        try:
            async for attempt in self._persist():
                with attempt:
                    result = await self.scripts.fail(
                        self.keys, job_id, token, reason, int(delay_s * 1000),
                        permanent=permanent, outcome=label, keep=self.settings.failed_keep,
                        max_age_ms=self.settings.failed_max_age_s * 1000,
                        dlq_max_age_ms=self.settings.dlq_max_age_s * 1000,
                    )
        except LeaseLost:
            log.warning("job.lease_lost", error=reason)
            return "lease_lost"
        except REDIS_DOWN as exc:
            log.error("job.fail_not_recorded", error=reason, redisError=str(exc))
            return "unrecorded"
        log.info("job.failed", error=reason, outcome=label, permanent=permanent,
                 willRetry=result.retry_at_ms is not None)
        if result.cancelled:  # its cancel was requested meanwhile: no retry, no DLQ (R23)
            self.metrics.cancelled.labels(self.keys.queue, task_type).inc()
            log.info("job.cancelled", running=True, error=reason)
            return "cancelled"
        if result.retry_at_ms is not None:
            log.info("job.retry_scheduled", delayS=round(delay_s, 3), error=reason)
            self.on_retry_scheduled()
            return "retry"
        self.metrics.dlq.labels(self.keys.queue, task_type).inc()
        log.warning("job.dead_lettered", dlqId=result.dlq_id, error=reason)
        return "dlq"
