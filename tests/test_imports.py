"""A worker process imports what running jobs needs and nothing of the API, the operator or the
dev supervisor, builds none of the API's models (start-up time is the latency of scaling a
queue up from zero), and runs on uvloop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fixtures import Proc, eventually, job_in
from importtasks import HEAVY, WORKER_MODELS
from redis.asyncio import Redis

from jobq.client import Client
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import load_registry


async def test_worker_process_imports_no_api_operator_or_dev_modules(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc]
) -> None:
    tasks_settings = settings.model_copy(update={"tasks": ["importtasks"]})
    client = Client(redis, load_registry(tasks_settings.tasks), tasks_settings)
    start_worker("imports-queue:1", JOBQ_TASKS="importtasks")
    job_id = (await client.enqueue("loaded-modules", "m", {})).job_id
    job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), what="the report")
    assert job.result is not None
    assert job.result["heavy"] == [], f"a worker imported {job.result['heavy']} (none of {HEAVY})"
    assert job.result["loop"].startswith("uvloop"), job.result["loop"]
    built_for_the_api = set(job.result["built"]) - set(WORKER_MODELS)
    assert not built_for_the_api, f"a worker built {sorted(built_for_the_api)} at start"


def test_the_subpackages_import_from_the_repository_root() -> None:
    """Run there (``python -m jobq``, a bench script), ./jobq is imported, not the installed
    package; jobq.api, jobq.worker and jobq.operator must still be found (beside it), and the
    stdlib's operator must stay the stdlib's."""
    root = Path(__file__).resolve().parent.parent
    code = ("import jobq, jobq.api, jobq.worker.runner, jobq.operator.main, operator, sys; "
            "assert sys.path[0] == '' and jobq.__file__.startswith(sys.argv[1]), jobq.__file__; "
            "print(operator.add(1, 2))")
    done = subprocess.run([sys.executable, "-c", code, str(root / "jobq")], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr
