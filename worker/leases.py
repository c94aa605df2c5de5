"""Lease renewal on a thread of its own (R3).

A handler that hogs the CPU or blocks the event loop must not lose its lease, so renewal is
not driven by the loop: this thread runs its own event loop and Redis connection and renews
every held lease, batched per queue, every third of the lease length.

The same thread makes cancels prompt: every CANCEL_POLL_S it reads the cancel counter of each
queue it holds leases in (one GET per queue, inside the queue's hash tag, so it works on Redis
Cluster) and renews that queue at once when the counter moved; ``renew`` then names the jobs
asked to cancel. A cancel landing between a claim's reply and the lease entering the table is
only seen at the next regular renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from jobq.connection import REDIS_DOWN, Redis, connect
from jobq.keys import CANCEL_POLL_S, QueueKeys
from jobq.logs import get_logger
from jobq.scripts import CANCEL_REQUESTED, LEASE_LOST, Scripts
from jobq.tracing import quiet

log = get_logger("jobq.worker.leases")

STOP_WAIT_S = 1.0  # stop() waits this long for the thread to end
RENEW_TIMEOUT_MIN_S = 1.0  # a renewal call is given at least this long (else lease/3)


class LeaseTable:
    """The leases this process holds, per queue; shared by the event loop and the renewer.

    Held as (job id, token) pairs, not by job id: the same job can be leased twice to this
    process (its first attempt lost the lease but its handler still runs when the retry is
    claimed here again). Each attempt lets go of its own lease only, and the renewer keeps
    renewing both, so the lost one is reported (and its handler stopped) while the new one
    stays renewed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, dict[tuple[str, str], None]] = {}  # queue -> leases, in order

    def add(self, queue: str, job_id: str, token: str) -> None:
        with self._lock:
            self._held.setdefault(queue, {})[(job_id, token)] = None

    def discard(self, queue: str, job_id: str, token: str) -> bool:
        """Forget a lease if it is still held; False when it was already let go."""
        with self._lock:
            held = self._held.get(queue, {})
            if (job_id, token) not in held:
                return False
            del held[(job_id, token)]
            return True

    def snapshot(self) -> dict[str, list[tuple[str, str]]]:
        with self._lock:
            return {q: list(held) for q, held in self._held.items() if held}


class LeaseRenewer(threading.Thread):
    """Renews every lease in a LeaseTable until stopped; reports leases found lost."""

    def __init__(
        self, table: LeaseTable, redis_url: str, prefix: str, lease_s: float,
        on_lost: Callable[[str, str, str], object],
        on_cancel: Callable[[str, str, str], object] = lambda queue, job_id, token: None,
    ) -> None:
        super().__init__(name="lease-renewer", daemon=True)
        self.table = table
        self.redis_url = redis_url
        self.prefix = prefix
        self.lease_ms = int(lease_s * 1000)
        self.interval_s = lease_s / 3
        self.poll_s = min(CANCEL_POLL_S, self.interval_s)
        self._seen: dict[str, bytes | str | None] = {}  # queue -> its cancel counter, last read
        self.on_lost = on_lost  # (queue, job id, token), on this thread, like on_cancel
        self.on_cancel = on_cancel  # called on this thread: must hand over thread-safely
        self._stopping = threading.Event()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> bool:
        """Stop renewing and wait up to ``timeout_s`` for the thread; False if it is still
        running (a renewal stuck on Redis: the thread is a daemon and dies with the process)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout_s)
        return not self.is_alive()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        quiet.suppress()  # renewals are plumbing: no spans from their Redis calls (R25)
        redis = connect(self.redis_url, max_connections=2)
        scripts = Scripts(redis)
        loop = asyncio.get_running_loop()
        next_renewal = loop.time() + self.interval_s
        try:
            # The loop of this thread has nothing else to run: blocking on the event is fine.
            while not self._stopping.wait(self.poll_s):
                try:
                    if loop.time() >= next_renewal:
                        next_renewal = loop.time() + self.interval_s
                        await self._renew_all(scripts, self.table.snapshot())
                    else:
                        await self._renew_cancelled(redis, scripts)
                except Exception:  # one bad round must not end renewal for the whole process
                    log.exception("lease.renew_error")
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_WAIT_S):
                    await redis.aclose()

    async def _renew_cancelled(self, redis: Redis, scripts: Scripts) -> None:
        """Renew now the queues whose cancel counter moved since it was last read."""
        moved = []
        for queue in self.table.snapshot():
            try:
                async with asyncio.timeout(max(self.poll_s, RENEW_TIMEOUT_MIN_S)):
                    count = await redis.get(QueueKeys(self.prefix, queue).cancels)
            except (*REDIS_DOWN, TimeoutError):
                return  # the regular renewal reports Redis trouble; no log line per poll
            if self._seen.get(queue) != count:
                self._seen[queue] = count
                moved.append(queue)
        if moved:
            # A fresh snapshot: a job leased since the one above may be the one to cancel.
            held = self.table.snapshot()
            await self._renew_all(scripts, {q: held[q] for q in moved if q in held})

    async def _renew_all(self, scripts: Scripts, held: dict[str, list[tuple[str, str]]]) -> None:
        for queue, leases in held.items():
            if self._stopping.is_set():
                return
            try:
                # Bounded, so a hung connection neither stalls stop() nor every other queue.
                async with asyncio.timeout(max(self.interval_s, RENEW_TIMEOUT_MIN_S)):
                    renewed = await scripts.renew(QueueKeys(self.prefix, queue), self.lease_ms,
                                                  leases)
            except (*REDIS_DOWN, TimeoutError) as exc:
                log.warning("lease.renew_failed", queue=queue, error=repr(exc))
                continue
            for (job_id, token), answer in zip(leases, renewed, strict=True):
                # A job acked meanwhile has left the table: that is not a lost lease.
                if answer == LEASE_LOST and self.table.discard(queue, job_id, token):
                    self.on_lost(queue, job_id, token)
                elif answer == CANCEL_REQUESTED:
                    self.on_cancel(queue, job_id, token)
