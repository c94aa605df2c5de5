"""The demo tasks of the original system, on their three queues, plus ``flaky`` for retries.

Loaded only when named (``JOBQ_TASKS=jobq.demo``; ``jobq dev`` and the Helm chart default to it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from jobq.context import JobContext
from jobq.environment import read_environment, under_prefix
from jobq.jobs import Backoff
from jobq.tasks import task


class DemoSettings(BaseModel):
    """The demo's own knobs (``JOBQ_DEMO_<NAME>``, from the environment or ``.env``), kept out
    of the core ``Settings`` because only these tasks use them. Read when a job runs, never at
    import."""

    model_config = ConfigDict(frozen=True)

    outbox: str = ".jobq/outbox.jsonl"
    """File ``welcome-email`` appends each "sent" email to (relative to the worker's cwd)."""

    @classmethod
    def load(cls) -> DemoSettings:
        values = under_prefix(read_environment(), "JOBQ_DEMO_")
        return cls(**{name: value for name, value in values.items() if name in cls.model_fields})


class WelcomeEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Spaces spelled out: ``\s`` means other characters in the JSON Schema (ECMA) regex that
    # clients read than in the one pydantic checks with, so the two would disagree.
    email: str = Field(pattern=r"^[^@ \t\r\n]+@[^@ \t\r\n]+\.[^@ \t\r\n]+$", max_length=254)
    name: str = Field(min_length=1, max_length=200)
    message: str | None = Field(None, max_length=10_000)


class GenerateReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reportId: str = Field(min_length=1, max_length=200)
    rows: int = Field(1000, ge=0, le=1_000_000)
    sleepSeconds: float = Field(2.0, ge=0, le=600)


class CleanupTemp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: str = Field(min_length=1)
    olderThanSeconds: float = Field(3600, ge=0)


class Flaky(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failTimes: int = Field(0, ge=0, le=100)
    sleepSeconds: float = Field(0, ge=0, le=600)


def _append_line(path: str, record: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as out:
        out.write(orjson.dumps(record) + b"\n")


@task("welcome-email", queue="email-queue", payload=WelcomeEmail, attempts=3)
async def welcome_email(ctx: JobContext, payload: WelcomeEmail) -> dict[str, Any]:
    """"Sends" the email by appending it to the outbox file, at most once per job (R8)."""
    record = {"jobId": ctx.job_id, "to": payload.email, "name": payload.name,
              "message": payload.message or f"Welcome, {payload.name}!"}
    outbox = DemoSettings.load().outbox
    sent = await ctx.side_effect("send-welcome-email", lambda: _append_line(outbox, record))
    return {"email": payload.email, "sent": sent}


@task("generate-report", queue="report-queue", payload=GenerateReport, attempts=3)
async def generate_report(ctx: JobContext, payload: GenerateReport) -> dict[str, Any]:
    """Slow work: waits ``sleepSeconds`` (an upstream query), then checksums ``rows`` rows."""
    await asyncio.sleep(payload.sleepSeconds)
    digest = hashlib.sha256()
    for row in range(payload.rows):
        digest.update(f"{payload.reportId},{row}\n".encode())
    return {"reportId": payload.reportId, "rows": payload.rows, "checksum": digest.hexdigest()}


@task("cleanup-temp", queue="cleanup-queue", payload=CleanupTemp, attempts=2)
def cleanup_temp(ctx: JobContext, payload: CleanupTemp) -> dict[str, Any]:
    """Removes regular files older than ``olderThanSeconds`` directly inside ``directory``.
    A sync handler: it runs in a worker thread."""
    directory = Path(payload.directory)
    if not directory.is_dir():
        return {"directory": str(directory), "removed": 0, "missing": True}
    cutoff = time.time() - payload.olderThanSeconds
    removed = 0
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
            os.unlink(entry.path)
            removed += 1
    return {"directory": str(directory), "removed": removed}


@task("flaky", queue="report-queue", payload=Flaky, attempts=3,
      backoff=Backoff(type="fixed", delaySeconds=1))
async def flaky(ctx: JobContext, payload: Flaky) -> dict[str, Any]:
    """Sleeps, then fails its first ``failTimes`` attempts: retries, DLQ and replay on demand."""
    await asyncio.sleep(payload.sleepSeconds)
    if ctx.attempt <= payload.failTimes:
        raise RuntimeError(f"flaky: attempt {ctx.attempt} fails as asked ({payload.failTimes})")
    return {"attempt": ctx.attempt}
