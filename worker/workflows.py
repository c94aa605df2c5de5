"""The workflow relay every worker runs (R24): per queue, it takes the queue's outbox entries
(the final outcomes of workflow nodes, written by the finish scripts) and applies them; per
process, it sweeps the intent shards for creations and cancels whose writer went away.

Every step is idempotent (jobq/workflows/relay.py), so all workers of a queue run this at once
safely; the outbox lease keeps them mostly off each other's entries.
"""

from __future__ import annotations

import asyncio
import contextlib

from jobq.connection import REDIS_DOWN, Redis, connect, result_of
from jobq.keys import WORKFLOW_WAKE_LOOK_S
from jobq.logs import get_logger
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.shutdown import wait_event
from jobq.workflows.keys import outbox_keys, outbox_wake_key
from jobq.workflows.relay import Relay

log = get_logger("jobq.worker.workflows")

TAKE_MOST = 100  # outbox entries one take leases
INTENT_SWEEP_S = 2.0  # how often a worker reads the intent shards
ERROR_PAUSE_S = 1.0  # after an error (Redis away), before the next look
WAKE_SLICE_S = 0.25  # longest single block on the wake list (the stop flag is seen between)


class OutboxRelay:
    """Applies one queue's workflow outbox entries, as soon as they are written: woken by the
    token a node's finish pushes onto the queue's wake list (BLPOP on a connection of its
    own) and an EXISTS every ``WORKFLOW_WAKE_LOOK_S`` while idle (with the wake-up off, every
    ``workflow_poll_s``); at once again after a turn that found some."""

    def __init__(self, scripts: Scripts, settings: Settings, queue: str) -> None:
        self.relay = Relay(scripts, settings)
        self.q = self.relay.queue(queue)
        self._wake_on = settings.workflow_wake
        # Woken by the finishes, the relay looks on its own only for what no token announced.
        self.poll_s = (max(settings.workflow_poll_s, WORKFLOW_WAKE_LOOK_S) if self._wake_on
                       else settings.workflow_poll_s)
        self.outbox = outbox_keys(self.q.base)[0]
        self.wake = outbox_wake_key(self.q.base)
        self._redis_url = settings.redis_url
        self._waker: Redis | None = None  # run()'s own connection for BLPOP, closed by it
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if self._wake_on:
            self._waker = connect(self._redis_url, max_connections=1)
        try:
            await self._relay()
        finally:  # also when the task is cancelled (the worker's shutdown)
            if self._waker is not None:
                with contextlib.suppress(Exception):
                    await self._waker.aclose()
                self._waker = None

    async def _relay(self) -> None:
        acked: list[str] = []
        redis = self.relay.scripts.redis
        while not self._stopping.is_set():
            try:
                # While there is nothing (a queue without workflows, most of the time), a look
                # is one EXISTS: no script call, and nothing per job.
                if not acked and not await redis.exists(self.outbox):
                    await self._idle()
                    continue
                taken = await self.relay.wf.take(self.q, TAKE_MOST, acked)
                acked = []
                # The outcomes of one workflow in one call (wf_apply_many), not one round trip
                # each; every apply is idempotent and guarded by its node's state, as when two
                # relays take the same entry. On an error none is acknowledged: they stay
                # leased and are taken again after OUTBOX_LEASE_MS (re-applying changes nothing).
                await self.relay.apply_entries([entry for _, entry in taken])
                acked = [job_id for job_id, _ in taken]
            except REDIS_DOWN as exc:
                log.warning("workflow.relay_redis_unavailable", queue=self.q.queue,
                            error=str(exc))
                await wait_event(self._stopping, ERROR_PAUSE_S)
                continue
            except Exception:
                log.exception("workflow.relay_error", queue=self.q.queue)
                await wait_event(self._stopping, ERROR_PAUSE_S)
                continue
            if not acked:
                await self._idle()
        if acked:  # applied but not yet acknowledged: a relay would apply them again, harmless
            with contextlib.suppress(*REDIS_DOWN):
                await self.relay.wf.take(self.q, 0, acked)

    async def _idle(self) -> None:
        """Wait ``poll_s`` for the next look, cut short by a wake token (a node of this queue
        ended) or the stop flag. Redis away: a plain wait (the next look reports it)."""
        if self._waker is None:
            await wait_event(self._stopping, self.poll_s)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_s
        while not self._stopping.is_set():
            left = deadline - loop.time()
            if left < 0.001:  # BLPOP's timeout 0 would block for ever
                return
            try:
                woken = await result_of(self._waker.blpop([self.wake], min(left, WAKE_SLICE_S)))
                if woken is not None:
                    return
            except REDIS_DOWN:
                await wait_event(self._stopping, min(left, ERROR_PAUSE_S))
                return


class IntentSweeper:
    """Finishes workflow creations and cancels whose process died midway (intents older than
    INTENT_AGE_MS): crash recovery within INTENT_AGE_MS + INTENT_SWEEP_S."""

    def __init__(self, scripts: Scripts, settings: Settings) -> None:
        self.relay = Relay(scripts, settings)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                moved = await self.relay.sweep_intents()
                if moved:
                    log.info("workflow.intents_swept", workflows=moved)
            except REDIS_DOWN as exc:
                log.warning("workflow.sweep_redis_unavailable", error=str(exc))
            except Exception:
                log.exception("workflow.sweep_error")
            await wait_event(self._stopping, INTENT_SWEEP_S)
