"""The worker's side of the process executor: a pool of children per queue, one job each.

A job holds its child from the moment it is sent until the child answers ``done``, or is killed
and reaped: the attempt's outcome is returned only after that, so its retry can never run beside
it (R26). Waiting for a free child does not count against the job's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any

from jobq.context import JobContext
from jobq.logs import get_logger
from jobq.settings import Settings
from jobq.tasks import Task
from jobq.worker.execute import Outcome
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.processes.exits import describe_exit
from jobq.worker.processes.protocol import (
    CANCEL,
    MAX_LINE,
    STOP,
    TIMEOUT,
    decode,
    encode,
)

log = get_logger("jobq.worker")

START_TIMEOUT_S = 120.0  # a child imports the tasks: slow on a loaded node, but not for ever
POLL_S = 0.05  # how often a running job's ctx.cancelled (set by the lease thread) is looked at
STOP_WAIT_S = 0.5  # a job cancelled by shutdown: its child gets this long to stop, then killed
CLOSE_WAIT_S = 1.0  # idle children get this long to exit when the pool closes
RETIRE_WAIT_S = 5.0  # a recycled child gets this long to exit before it is killed
RESTART_DELAY_S = (0.5, 5.0)  # a child that fails to start is retried after this, doubling
MiB = 1024 * 1024


class Waiting:
    """No message yet (``ChildProc.next`` timed out)."""


WAITING = Waiting()


class ChildProc:
    """One child process and its two pipes."""

    def __init__(self, proc: asyncio.subprocess.Process, reader: asyncio.StreamReader,
                 transport: asyncio.BaseTransport) -> None:
        self.proc = proc
        self.reader = reader
        self.transport = transport
        self.jobs = 0
        self._line: asyncio.Future[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, message: dict[str, Any]) -> None:
        """Write a message; a child that died meanwhile shows as EOF on its own pipe."""
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, BrokenPipeError, RuntimeError):
            stdin.write(encode(message))
            await stdin.drain()

    async def next(self, wait_s: float | None) -> dict[str, Any] | Waiting | None:
        """The child's next message, None at EOF (it died), WAITING after ``wait_s``."""
        if self._line is None:
            self._line = asyncio.ensure_future(self.reader.readline())
        done, _ = await asyncio.wait({self._line}, timeout=wait_s)
        if not done:
            return WAITING
        line, self._line = self._line, None
        try:
            data = line.result()
        except (ValueError, asyncio.LimitOverrunError, ConnectionError):
            return None
        return decode(data) if data else None

    def close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def kill(self) -> int:
        """SIGKILL and reap; the exit status."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        return await self.reaped()

    async def reaped(self) -> int:
        code = await self.proc.wait()
        self.close_stdin()
        if self._line is not None:
            self._line.cancel()
        self.transport.close()
        return code


class ProcessPool:
    """Child processes of one queue; ``run`` sends a job to an idle one."""

    def __init__(self, size: int, settings: Settings, queue: str, metrics: WorkerMetrics) -> None:
        self.size = size
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self._idle: asyncio.Queue[ChildProc] = asyncio.Queue()
        self._children: set[ChildProc] = set()
        self._spawning: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._started = False
        self._log = log.bind(queue=queue)

    def start(self) -> None:
        """Start the children (once; in the background: the first jobs wait for them)."""
        if self._started:
            return
        self._started = True
        for _ in range(self.size):
            self._replace()

    @property
    def pids(self) -> list[int]:
        return sorted(c.pid for c in self._children)

    def _replace(self) -> None:
        if self._closing:
            return
        spawning = asyncio.create_task(self._spawn_idle(), name=f"child-start:{self.queue}")
        self._spawning.add(spawning)
        spawning.add_done_callback(self._spawning.discard)

    async def _spawn_idle(self) -> None:
        delay = RESTART_DELAY_S[0]
        while not self._closing:
            try:
                child = await self._spawn()
            except Exception as exc:
                self._log.error("worker.child_start_failed", error=repr(exc), retryS=delay)
                await asyncio.sleep(delay)
                delay = min(RESTART_DELAY_S[1], delay * 2)
                continue
            if self._closing:
                await child.kill()
                return
            self._idle.put_nowait(child)
            return

    async def _spawn(self) -> ChildProc:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "jobq.worker.processes.child", str(write_fd),
                stdin=asyncio.subprocess.PIPE, pass_fds=(write_fd,))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        reader = asyncio.StreamReader(limit=MAX_LINE)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        child = ChildProc(proc, reader, transport)
        self._children.add(child)
        try:
            # The password is folded into the URL already; the child needs no Redis anyway.
            init = self.settings.model_copy(update={"redis_password": None})
            await child.send({"op": "init", "sys_path": sys.path,
                              "settings": init.model_dump(mode="json")})
            ready = await child.next(START_TIMEOUT_S)
            if not isinstance(ready, dict) or ready.get("op") != "ready":
                code = await child.kill()
                raise RuntimeError(f"child did not start: {describe_exit(code, child.pid)}")
        except BaseException:
            await child.kill()
            self._children.discard(child)
            raise
        self._log.info("worker.child_started", childPid=child.pid)
        return child

    async def run(self, task: Task, ctx: JobContext, raw_payload: Any,
                  timeout_s: float | None) -> Outcome:
        """Run one attempt in a child; returns only once the child is done with it."""
        self.start()
        child = await self._idle.get()
        keep = False
        try:
            outcome, keep = await self._run_on(child, task, ctx, raw_payload, timeout_s)
            return outcome
        except asyncio.CancelledError:
            # Shutdown past the grace, or a cancel of an async handler: stop the child's job,
            # kill it if it does not stop at once; the job is handed back (or ended cancelled).
            await self._stop(child, STOP)
            raise
        except Exception:
            await self._retire(child, "error", kill=True)
            raise
        finally:
            if keep:
                self._idle.put_nowait(child)
            else:
                self._replace()

    async def _run_on(self, child: ChildProc, task: Task, ctx: JobContext, raw_payload: Any,
                      timeout_s: float | None) -> tuple[Outcome, bool]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        now = loop.time()
        ctx.deadline = time.monotonic() + timeout_s if timeout_s else None
        soft_at = now + timeout_s if timeout_s else float("inf")
        hard_at = soft_at + self.settings.kill_after_s
        kill_at = float("inf")  # after a cancel request
        asked: str | None = None
        await child.send({"op": "job", "payload": raw_payload, "timeout_s": timeout_s, "ctx": {
            "job_id": ctx.job_id, "type": ctx.type, "queue": ctx.queue, "attempt": ctx.attempt,
            "max_attempts": ctx.max_attempts, "worker": ctx.worker, "token": ctx.token}})
        while True:
            now = loop.time()
            if ctx.cancelled and asked is None:
                asked, kill_at = CANCEL, now + self.settings.kill_after_s
                await child.send({"op": "cancel", "why": CANCEL})
            if now >= hard_at or now >= kill_at:
                code = await self._retire(child, "hard_timeout" if asked == TIMEOUT else "cancel",
                                          kill=True)
                if asked == TIMEOUT:
                    return Outcome(
                        ok=False, history_label="timeout",
                        reason=f"TimeoutError: no result within {timeout_s}s; the child "
                        f"process (pid {child.pid}) was killed at the hard timeout "
                        f"({timeout_s}s + {self.settings.kill_after_s}s)"), False
                why = f"cancelled; {describe_exit(code, child.pid)}"
                return Outcome(ok=False, reason=why), False
            if now >= soft_at and asked is None:
                asked = TIMEOUT
                await child.send({"op": "cancel", "why": TIMEOUT})
            wake = min(hard_at, kill_at, soft_at if asked is None else hard_at)
            message = await child.next(min(POLL_S, max(0.0, wake - now)))
            if isinstance(message, Waiting):
                continue
            if message is None:  # the pipe closed: the child died with the job
                code = await child.reaped()
                self._children.discard(child)
                self.metrics.children_replaced.labels(self.queue, "died").inc()
                reason = describe_exit(code, child.pid)
                ctx.log.warning("job.child_died", reason=reason, childPid=child.pid)
                return Outcome(ok=False, reason=f"ChildDied: {reason}"), False
            if message["op"] == "call":
                await self._answer(child, ctx, message)
                continue
            if message["op"] == "done":
                return self._outcome(message, asked, timeout_s, started), self._keep(child, message)

    @staticmethod
    def _outcome(message: dict[str, Any], asked: str | None, timeout_s: float | None,
                 started: float) -> Outcome:
        duration = time.perf_counter() - started
        if asked == TIMEOUT:  # whatever it returned after its soft timeout, it had none in time
            reason = message.get("reason") if not message.get("ok") else None
            return Outcome(ok=False, history_label="timeout", duration_s=duration,
                           reason=f"TimeoutError: no result within {timeout_s}s"
                           + (f" ({reason})" if reason else ""))
        if message.get("ok"):
            return Outcome(ok=True, result_json=message["result"], duration_s=duration)
        return Outcome(ok=False, reason=str(message.get("reason", "")),
                       history_label=str(message.get("label") or "failed"),
                       permanent=bool(message.get("permanent")),
                       retry_delay_s=message.get("retry_delay_s"), duration_s=duration)

    async def _answer(self, child: ChildProc, ctx: JobContext, message: dict[str, Any]) -> None:
        """Run a call the handler made on its context, with this attempt's lease token."""
        method, args = message.get("method"), message.get("args") or {}
        reply: dict[str, Any] = {"op": "reply", "id": message["id"]}
        try:
            if method == "progress":
                await ctx.progress(float(args["fraction"]), args.get("message"))
                reply["value"] = None
            elif method == "reserve":
                reply["value"] = await ctx._reserve(str(args["name"]))
            else:
                raise RuntimeError(f"unknown call {method!r}")
        except Exception as exc:
            reply.update(error=str(exc), kind=type(exc).__name__)
        await child.send(reply)

    def _keep(self, child: ChildProc, done: dict[str, Any]) -> bool:
        """Whether the child takes another job, or is recycled (max jobs, memory)."""
        child.jobs += 1
        s = self.settings
        rss = int(done.get("rss") or 0)
        if s.child_max_rss_mb and rss > s.child_max_rss_mb * MiB:
            reason = "max_rss"
        elif s.child_max_jobs and child.jobs >= s.child_max_jobs:
            reason = "max_jobs"
        else:
            return True
        self._log.info("worker.child_recycled", childPid=child.pid, reason=reason,
                       rssMb=round(rss / MiB, 1), jobs=child.jobs)
        task = asyncio.create_task(self._retire(child, reason, kill=False))
        self._spawning.add(task)  # keeps a reference; close() waits for the child anyway
        task.add_done_callback(self._spawning.discard)
        return False

    async def _retire(self, child: ChildProc, reason: str, *, kill: bool) -> int:
        """Stop a child for good: asked to exit (its stdin closed) or killed; reaped either way."""
        self.metrics.children_replaced.labels(self.queue, reason).inc()
        try:
            if kill:
                return await child.kill()
            child.close_stdin()
            try:
                async with asyncio.timeout(RETIRE_WAIT_S):
                    return await child.reaped()
            except TimeoutError:
                return await child.kill()
        finally:
            self._children.discard(child)

    async def _stop(self, child: ChildProc, why: str) -> None:
        """Ask the child's job to stop; kill the child if it has not answered in STOP_WAIT_S.
        Either way the child is replaced (a stopped handler may have left anything behind)."""
        await child.send({"op": "cancel", "why": why})
        deadline = asyncio.get_running_loop().time() + STOP_WAIT_S
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            message = await child.next(left)
            if message is None or (isinstance(message, dict) and message["op"] == "done"):
                break
        await self._retire(child, "cancel", kill=True)

    async def close(self) -> None:
        """Stop every child: idle ones exit when their stdin closes, the rest are killed.
        Leaves no child process behind (each is reaped)."""
        self._closing = True
        for spawning in list(self._spawning):
            spawning.cancel()
        children = list(self._children)
        for child in children:
            child.close_stdin()
        exits = [asyncio.ensure_future(c.proc.wait()) for c in children]
        if exits:
            await asyncio.wait(exits, timeout=CLOSE_WAIT_S)
        for child in children:
            await child.kill()
        self._children.clear()
        if self._spawning:
            await asyncio.wait(list(self._spawning), timeout=CLOSE_WAIT_S)


