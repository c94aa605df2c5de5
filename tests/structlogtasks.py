"""A tasks module that configures structlog itself, as an application would: run by a worker with
JOBQ_LOG_FORMAT=structlog, jobq's own lines go through this pipeline (tests/test_logs.py)."""

from __future__ import annotations

import sys

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, WrappedLogger

from jobq.context import JobContext
from jobq.tasks import task


def tag(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict["app"] = "structlogtasks"
    return event_dict


# The application's own set-up: no timestamp, its own field, the stdlib's JSON, a print a line.
structlog.configure(
    processors=[structlog.processors.add_log_level, tag, structlog.processors.JSONRenderer()],
    logger_factory=structlog.PrintLoggerFactory(sys.stdout),
)


class Nothing(BaseModel):
    pass


@task("app-logs", queue="app-logs-queue", payload=Nothing, attempts=1)
async def app_logs(ctx: JobContext, payload: Nothing) -> None:
    ctx.log.info("app.hello", n=1)
