"""A child process of the process executor: imports the tasks once, then runs one job at a time.

Started by ``ProcessPool`` as ``python -m jobq.worker.processes.child FD``: it reads messages
on stdin and writes its own on ``FD``; its stdout and stderr are the worker's, so its log lines
(bound to the job) go where the worker's go. SIGTERM and SIGINT are ignored: the worker decides
when a child stops (it may be sent to the whole process group), and the child dies with the
worker (PR_SET_PDEATHSIG), so no child outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Coroutine
from types import FrameType
from typing import Any, cast

from pydantic import ValidationError

from jobq.errors import PermanentError, RetryLater, SoftTimeout, UnknownTask
from jobq.jobs import dumps
from jobq.logs import configure_logging, flush, get_logger
from jobq.settings import Settings
from jobq.tasks import Registry, Task, load_registry
from jobq.worker.processes.childcontext import Calls, ChildContext
from jobq.worker.processes.protocol import CANCEL, TIMEOUT, decode, encode, rss_bytes

MAX_REASON_CHARS = 4000
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the worker dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the worker died before the call: nobody will read us
        os._exit(1)


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


class Child:
    """The job loop (main thread) and the reader of the parent's messages (a thread)."""

    def __init__(self, out_fd: int) -> None:
        self._out = out_fd
        self._write_lock = threading.Lock()
        self.calls = Calls(self.write)
        self.jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.loop = asyncio.new_event_loop()
        self.current: ChildContext | None = None
        self.current_async: asyncio.Task[Any] | None = None
        self.stop_why: str | None = None  # why the parent asked the running job to stop
        self.interruptible = False  # a sync handler runs: SIGUSR1 may raise in it
        self.registry = Registry([])
        self.settings = Settings()

    def write(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._out, view):]

    def read_forever(self) -> None:
        """Reader thread: jobs to the main thread, answers to their calls, cancels at once."""
        for line in sys.stdin.buffer:
            message = decode(line)
            op = message["op"]
            if op == "reply":
                self.calls.answer(message)
            elif op == "cancel":
                self.cancel(str(message.get("why", CANCEL)))
            else:
                self.jobs.put(message)
        self.jobs.put(None)  # stdin closed: exit once idle

    def cancel(self, why: str) -> None:
        ctx = self.current
        if ctx is None or self.stop_why is not None:
            return
        self.stop_why = why
        ctx.cancelled = True
        if self.current_async is not None:
            task = self.current_async
            self.loop.call_soon_threadsafe(task.cancel)
        elif self.interruptible:
            os.kill(os.getpid(), signal.SIGUSR1)  # wakes a sleep; raised between bytecodes

    def on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.interruptible and self.stop_why is not None:
            self.interruptible = False  # once
            if self.stop_why == TIMEOUT:
                raise SoftTimeout("the job's timeout passed; the child is killed soon")
            raise asyncio.CancelledError(self.stop_why)

    def serve(self) -> None:
        init = self.jobs.get()
        if init is None:
            return
        sys.path[:] = init["sys_path"]
        self.settings = Settings.model_validate(init["settings"])
        configure_logging(self.settings.log_level, self.settings.log_format, sys.stdout)
        self.registry = load_registry(self.settings.tasks)
        self.log = get_logger("jobq.worker").bind(childPid=os.getpid())
        self.write(encode({"op": "ready", "pid": os.getpid()}))
        while (job := self.jobs.get()) is not None:
            done = self.run(job)
            flush()
            done["rss"] = rss_bytes()
            self.write(encode(done))

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """One job, its outcome as the ``done`` message."""
        c = job["ctx"]
        timeout_s = job.get("timeout_s")
        ctx = ChildContext(
            job_id=c["job_id"], type=c["type"], queue=c["queue"], attempt=c["attempt"],
            max_attempts=c["max_attempts"], worker=c["worker"], token=c["token"],
            settings=self.settings,
            log=self.log.bind(queue=c["queue"], worker=c["worker"], jobId=c["job_id"],
                              type=c["type"], attempt=c["attempt"]),
            _scripts=cast(Any, None), _keys=cast(Any, None), _loop=self.loop,
            deadline=time.monotonic() + timeout_s if timeout_s else None, _calls=self.calls)
        self.stop_why = None
        started = time.perf_counter()
        try:
            try:
                task = self.registry.get(c["type"])
            except UnknownTask as exc:
                return {"op": "done", "ok": False, "reason": str(exc), "permanent": True}
            try:
                payload = task.payload.model_validate(job["payload"])
            except ValidationError as exc:
                return {"op": "done", "ok": False, "reason": _reason(exc), "permanent": True}
            self.current = ctx
            result = self._call(task, ctx, payload)
            return {"op": "done", "ok": True, "result": dumps(result),
                    "duration_s": time.perf_counter() - started}
        except (SoftTimeout, asyncio.CancelledError) as exc:
            label = "timeout" if self.stop_why == TIMEOUT else "failed"
            return {"op": "done", "ok": False, "reason": _reason(exc), "label": label}
        except RetryLater as exc:
            return {"op": "done", "ok": False, "reason": _reason(exc), "retry_delay_s": exc.delay_s}
        except PermanentError as exc:
            return {"op": "done", "ok": False, "reason": _reason(exc), "permanent": True}
        except Exception as exc:
            ctx.log.debug("job.handler_error", traceback=traceback.format_exc())
            return {"op": "done", "ok": False, "reason": _reason(exc)}
        finally:
            self.interruptible = False
            self.current = None
            self.current_async = None

    def _call(self, task: Task, ctx: ChildContext, payload: Any) -> Any:
        if task.is_async:
            call = cast(Coroutine[Any, Any, Any], task.handler(ctx, payload))
            self.current_async = self.loop.create_task(call)
            if self.stop_why is not None:  # asked to stop before it started
                self.current_async.cancel()
            return self.loop.run_until_complete(self.current_async)
        self.interruptible = True
        if self.stop_why is not None:
            self.on_interrupt(signal.SIGUSR1, None)
        try:
            return task.handler(ctx, payload)
        finally:
            self.interruptible = False


def main() -> None:
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = Child(int(sys.argv[1]))
    signal.signal(signal.SIGUSR1, child.on_interrupt)
    threading.Thread(target=child.read_forever, name="jobq-child-reader", daemon=True).start()
    child.serve()
    flush()
    sys.stdout.flush()
    os._exit(0)  # the reader thread may still block on stdin


if __name__ == "__main__":
    main()
