"""The last resort of shutdown: a thread that ends a worker whose orderly exit got stuck.

Every wait of the orderly shutdown is bounded, so this should never fire. If it does (a bug, a
handler that blocks the event loop, a hung library call), the loop cannot be trusted to act, so
a plain thread does: it logs what is still running, hands back the leases it knows of over a
connection of its own, and exits non-zero, rather than waiting for the kubelet's SIGKILL and
leaving those jobs to expire as "worker lost".
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
import traceback

import redis

from jobq.connection import connect_sync
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.scripts import handback_args, handback_keys, script_source
from jobq.settings import Settings
from jobq.tracing import quiet
from jobq.worker.leases import LeaseTable

log = get_logger("jobq.worker")

AFTER_GRACE_S = 8.0  # fires this long after the grace ends (keep below the pod's extra time)
EXIT_STUCK = 70  # EX_SOFTWARE: the orderly shutdown did not finish
REDIS_TIMEOUT_S = 1.0  # each Redis call of the forced hand-back, at most
STACK_LIMIT = 12  # frames logged per task or thread


class ShutdownWatchdog(threading.Thread):
    """Started with the worker, armed at SIGTERM; unless disarmed within ``after_s`` of being
    armed, forces the exit. ``arm()`` only sets an event, so a plain signal handler can call it
    even while the event loop is blocked."""

    def __init__(
        self, after_s: float, leases: LeaseTable, settings: Settings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(name="shutdown-watchdog", daemon=True)
        self.after_s = after_s
        self.leases = leases
        self.settings = settings
        self.redis_url = settings.redis_url
        self.prefix = settings.key_prefix
        self.loop = loop
        self._armed = threading.Event()
        self._disarmed = threading.Event()

    def arm(self) -> None:
        self._armed.set()

    def disarm(self) -> None:
        self._disarmed.set()
        self._armed.set()  # lets the thread end

    def run(self) -> None:
        quiet.suppress()  # its forced hand-back is plumbing too (R25)
        self._armed.wait()
        if self._disarmed.wait(self.after_s):
            return
        log.error("worker.shutdown_stuck", afterS=self.after_s, tasks=task_stacks(self.loop),
                  threads=thread_stacks())
        handed = self.hand_back()
        log.error("worker.exit_forced", handedBack=handed, exitCode=EXIT_STUCK)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_STUCK)

    def hand_back(self) -> int:
        """Hand back every lease still in the table, queue by queue; errors are logged."""
        handed = 0
        try:
            client = connect_sync(self.redis_url, timeout_s=REDIS_TIMEOUT_S)
            handback = client.register_script(  # type: ignore[misc]
                script_source("handback"))
            for queue, held in self.leases.snapshot().items():
                keys = QueueKeys(self.prefix, queue)
                s = self.settings
                args = handback_args(keys, held, s.max_handbacks, s.failed_keep,
                                     s.failed_max_age_s * 1000, s.dlq_max_age_s * 1000)
                try:
                    handed += int(handback(keys=handback_keys(keys), args=args))
                except redis.RedisError as exc:
                    log.error("worker.handback_failed", queue=queue, jobs=len(held),
                              error=repr(exc))
                    continue
                for job_id, _ in held:
                    log.info("job.handed_back", queue=queue, jobId=job_id)
            client.close()
        except Exception as exc:  # last resort: never let an error here keep the process alive
            log.error("worker.handback_failed", error=repr(exc))
        return handed


def task_stacks(loop: asyncio.AbstractEventLoop) -> dict[str, str]:
    """Where each asyncio task of ``loop`` is waiting, read from another thread (best effort:
    the loop may be changing them meanwhile)."""
    stacks: dict[str, str] = {}
    try:
        for task in asyncio.all_tasks(loop):
            out = io.StringIO()
            task.print_stack(limit=STACK_LIMIT, file=out)
            stacks[task.get_name()] = out.getvalue()
    except Exception as exc:
        stacks["<error>"] = repr(exc)
    return stacks


def thread_stacks() -> dict[str, str]:
    """Where each thread is, by thread name."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return {
        names.get(ident, str(ident)): "".join(traceback.format_stack(frame, limit=STACK_LIMIT))
        for ident, frame in sys._current_frames().items()
        if ident != threading.get_ident()
    }
