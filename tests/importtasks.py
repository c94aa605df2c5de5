"""A task that reports what the worker process running it has imported (tests/test_imports.py)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.tasks import task

HEAVY = ("fastapi", "starlette", "uvicorn", "kopf", "kubernetes", "structlog", "pydantic_settings",
         "jobq.api", "jobq.operator", "jobq.cli.api_cmd", "jobq.cli.dev", "jobq.embedded")


class Nothing(BaseModel):
    pass


@task("loaded-modules", queue="imports-queue", payload=Nothing, attempts=1)
async def loaded_modules(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    return {
        "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY or m in HEAVY),
        "loop": type(asyncio.get_running_loop()).__module__,
    }
