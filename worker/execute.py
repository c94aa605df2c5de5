"""Running one handler: payload check, timeout, sync handlers on threads, errors to outcomes.

Every exception a handler raises becomes an Outcome; nothing a job does can crash the worker
(R10). Only CancelledError (shutdown) propagates, so the caller can hand the job back (R9).
"""

from __future__ import annotations

import asyncio
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from jobq.context import JobContext
from jobq.errors import PermanentError, RetryLater
from jobq.jobs import dumps
from jobq.tasks import Task

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


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


async def execute(
    task: Task, ctx: JobContext, raw_payload: Any, threads: ThreadPoolExecutor,
    timeout_s: float | None,
) -> Outcome:
    """Run ``task`` for one attempt and say how it went."""
    try:
        payload = task.payload.model_validate(raw_payload)
    except ValidationError as exc:
        return Outcome(ok=False, reason=_reason(exc), permanent=True)
    started = time.perf_counter()
    try:
        if task.is_async:
            call = task.handler(ctx, payload)
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(threads, task.handler, ctx, payload)
        result = await (asyncio.wait_for(call, timeout_s) if timeout_s else call)
        return Outcome(ok=True, result_json=dumps(result),
                       duration_s=time.perf_counter() - started)
    except asyncio.CancelledError:
        raise
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
