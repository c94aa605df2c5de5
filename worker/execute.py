"""Running one handler: payload check, timeout, sync handlers on threads, errors to outcomes.

Every exception a handler raises becomes an Outcome; nothing a job does can crash the worker
(R10). Only CancelledError (shutdown) propagates, so the caller can hand the job back (R9).

A sync handler's timeout counts from when its thread starts it, not from when it was queued
for a thread. A thread cannot be stopped: on timeout ``ctx.cancelled`` is set (a cooperative
handler returns) and the Outcome carries the thread's future (``overran``), so the runner
keeps the job's slot until the thread really returns (see QueueRunner._outlive).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from jobq.context import JobContext
from jobq.errors import PermanentError, RetryLater
from jobq.results import encode_result
from jobq.tasks import Task

if TYPE_CHECKING:
    from jobq.worker.processes import ProcessPool

MAX_REASON_CHARS = 4000  # failure reasons are stored on the job and in the DLQ: keep them small


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended."""

    ok: bool
    result_json: str = "null"
    reason: str = ""
    history_label: str = "failed"  # how the attempt shows in the job history: failed | timeout
    permanent: bool = False
    retry_delay_s: float | None = None  # RetryLater's own delay; None = the task's backoff
    duration_s: float = 0.0
    overran: asyncio.Future[Any] | None = None
    """A sync handler that outlived its timeout: its thread's future, still running."""


class _Overran(TimeoutError):
    """A sync handler's timeout passed while its thread still runs it."""

    def __init__(self, thread: asyncio.Future[Any]) -> None:
        super().__init__()
        self.thread = thread


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


async def execute(
    task: Task, ctx: JobContext, raw_payload: Any, threads: ThreadPoolExecutor,
    timeout_s: float | None, processes: ProcessPool | None = None,
) -> Outcome:
    """Run ``task`` for one attempt and say how it went."""
    try:
        payload = task.payload.model_validate(raw_payload)
    except ValidationError as exc:
        return Outcome(ok=False, reason=_reason(exc), permanent=True)
    if processes is not None and (task.executor or ctx.settings.executor) == "process":
        return await processes.run(task, ctx, raw_payload, timeout_s)  # in a child (R26)
    started = time.perf_counter()
    ctx.deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        if task.is_async:
            # asyncio.timeout runs the handler in this task; wait_for would wrap it in a task
            # of its own (one more task and event-loop turn per job).
            async with asyncio.timeout(timeout_s or None):
                result = await task.handler(ctx, payload)
        else:
            result = await _in_thread(task, ctx, payload, threads, timeout_s)
        return Outcome(ok=True, result_json=encode_result(result),
                       duration_s=time.perf_counter() - started)
    except asyncio.CancelledError:
        raise
    except _Overran as exc:
        return Outcome(ok=False, reason=f"TimeoutError: no result within {timeout_s}s",
                       history_label="timeout", overran=exc.thread)
    except TimeoutError:
        return Outcome(ok=False, reason=f"TimeoutError: no result within {timeout_s}s",
                       history_label="timeout")
    except RetryLater as exc:
        return Outcome(ok=False, reason=_reason(exc), retry_delay_s=exc.delay_s)
    except PermanentError as exc:
        return Outcome(ok=False, reason=_reason(exc), permanent=True)
    except Exception as exc:
        ctx.log.debug("job.handler_error", traceback=traceback.format_exc())
        return Outcome(ok=False, reason=_reason(exc))


async def _in_thread(
    task: Task, ctx: JobContext, raw: Any, threads: ThreadPoolExecutor, timeout_s: float | None,
) -> Any:
    """Run a sync handler on the pool; its timeout starts when a thread starts it.

    Raises _Overran (after setting ``ctx.cancelled``) when the timeout passes and the thread
    still runs: the caller decides what to do with a thread it cannot stop."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()

    def run() -> Any:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_set_started, started)
        if timeout_s:
            ctx.deadline = time.monotonic() + timeout_s  # from when the thread starts it
        return task.handler(ctx, raw)

    thread = loop.run_in_executor(threads, run)
    try:
        if not timeout_s:
            return await thread
        # Waiting for a free thread does not count against the handler's time.
        await asyncio.wait({started, thread}, return_when=asyncio.FIRST_COMPLETED)
        if not thread.done():
            await asyncio.wait({thread}, timeout=timeout_s)
        if not thread.done():
            ctx.cancelled = True  # a cooperative handler checks this and returns
            raise _Overran(thread)
    except asyncio.CancelledError:
        thread.cancel()  # not started yet: it never runs; running: its result is dropped
        raise
    return thread.result()


def _set_started(started: asyncio.Future[None]) -> None:
    if not started.done():
        started.set_result(None)
