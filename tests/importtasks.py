"""A task that reports what the worker process running it has imported and which of jobq's
models it has built (tests/test_imports.py)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.tasks import task

HEAVY = ("fastapi", "starlette", "uvicorn", "kopf", "kubernetes", "pydantic_settings",
         "jobq.api", "jobq.operator", "jobq.cli.api_cmd", "jobq.cli.dev", "jobq.embedded")
# The only models of jobq's own a worker builds: the API's are built at first use (jobq.models).
WORKER_MODELS = ("jobq.jobs.Backoff", "jobq.settings.Settings")


class Nothing(BaseModel):
    pass


@task("loaded-modules", queue="imports-queue", payload=Nothing, attempts=1)
async def loaded_modules(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    return {
        "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY or m in HEAVY),
        "loop": type(asyncio.get_running_loop()).__module__,
        "built": sorted(name for model in _subclasses(BaseModel)
                        if (name := f"{model.__module__}.{model.__qualname__}").startswith("jobq.")
                        and model.__pydantic_complete__),
    }


def _subclasses(cls: type[BaseModel]) -> set[type[BaseModel]]:
    return {c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))}
