"""Tasks of the process-executor tests (``JOBQ_TASKS=testtasks,proctasks``), on ``proc-queue``.

Each handler writes what it did under ``$JOBQ_TEST_DIR``: a file per attempt holding the pid
of the process that ran it (``<job>.<attempt>.pid``), and ``overlap`` when an attempt starts
while the process of an earlier attempt of the same job is still alive."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.jobs import Backoff
from jobq.tasks import task

QUEUE = "proc-queue"
RETRY = Backoff(delaySeconds=0.05)
LEAK: list[bytes] = []  # what the leaking handler keeps


class Step(BaseModel):
    n: int = 0


def _dir() -> Path:
    return Path(os.environ["JOBQ_TEST_DIR"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped) counts as dead: it runs nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def began(ctx: JobContext) -> None:
    """Record this attempt's pid; flag an overlap with a still-running earlier attempt."""
    here = _dir()
    for earlier in range(1, ctx.attempt):
        pid_file = here / f"{ctx.job_id}.{earlier}.pid"
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            (here / "overlap").write_text(f"{ctx.job_id} attempt {earlier} still running")
    (here / f"{ctx.job_id}.{ctx.attempt}.pid").write_text(str(os.getpid()))


@task("proc-hang", queue=QUEUE, payload=Step, attempts=2, backoff=RETRY, timeout_s=1.0,
      executor="process")
def hang(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """First attempt: hung, deaf to its soft timeout (swallows it); the retry returns."""
    began(ctx)
    if ctx.attempt == 1:
        while True:
            # The point: a handler that will not stop, whatever it is told (it waits for a
            # signal and swallows what the soft timeout raises).
            with contextlib.suppress(BaseException):
                signal.pause()
    return {"attempt": ctx.attempt}


@task("proc-spin", queue=QUEUE, payload=Step, attempts=2, backoff=RETRY, timeout_s=1.0,
      executor="process")
async def spin(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """First attempt: a CPU loop on the event loop (no await: a cancel cannot land)."""
    began(ctx)
    if ctx.attempt == 1:
        while True:
            pass
    await asyncio.sleep(0)
    return {"attempt": ctx.attempt}


@task("proc-soft", queue=QUEUE, payload=Step, attempts=1, timeout_s=1.0, executor="process")
def soft(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """Sleeps past its timeout; the soft timeout interrupts it (SoftTimeout) and it cleans up."""
    began(ctx)
    try:
        while True:
            signal.pause()  # until the soft timeout's signal raises SoftTimeout here
    finally:
        (_dir() / f"{ctx.job_id}.cleaned").write_text("yes")
    return {}


@task("proc-crash", queue=QUEUE, payload=Step, attempts=1, executor="process")
def crash(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """n=1: segfault (ctypes); n=2: os._exit(3); n=3: SIGKILL."""
    began(ctx)
    if payload.n == 1:
        ctypes.string_at(0)
    elif payload.n == 2:
        os._exit(3)
    else:
        os.kill(os.getpid(), signal.SIGKILL)
    return {}


@task("proc-ok", queue=QUEUE, payload=Step, attempts=1, executor="process")
def ok(ctx: JobContext, payload: Step) -> dict[str, Any]:
    ctx.progress_blocking(0.5, "half")
    return {"n": payload.n, "pid": os.getpid()}


@task("proc-ok-async", queue=QUEUE, payload=Step, attempts=1, executor="process")
async def ok_async(ctx: JobContext, payload: Step) -> dict[str, Any]:
    await ctx.progress(0.5, "half")
    return {"n": payload.n, "pid": os.getpid()}


@task("proc-effect", queue=QUEUE, payload=Step, attempts=3, backoff=RETRY, executor="process")
def effect(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """Runs its side effect (a line in ``effects``), then its first attempt's child is
    SIGKILLed: the retry must not run the effect again."""
    ran = ctx.side_effect_blocking(
        "mail", lambda: (_dir() / "effects").open("a").write(f"{ctx.job_id}\n"))
    if ctx.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"ran": ran, "attempt": ctx.attempt}


@task("proc-leak", queue=QUEUE, payload=Step, attempts=1, executor="process")
def leak(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """Keeps ``n`` MiB for ever (a leak), touched so it is resident."""
    LEAK.append(b"x" * (payload.n * 1024 * 1024))
    return {"pid": os.getpid()}


@task("proc-busy", queue=QUEUE, payload=Step, attempts=1, executor="process")
def busy(ctx: JobContext, payload: Step) -> dict[str, Any]:
    """Runs until told to stop (at most 60 s): for shutdown with busy children."""
    began(ctx)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return {}
