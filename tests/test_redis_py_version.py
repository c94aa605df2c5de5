"""The redis-py a run is checking: hack/test.sh runs a few suites again with the newest redis-py
that pyproject.toml accepts first on PYTHONPATH (the locks hold an older one), and names it in
JOBQ_TEST_REDIS_PY. This makes sure the tests and the jobq processes they start both ran it,
not the locked one, so a green run says something about that version."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
from fixtures import process_env

from jobq.settings import Settings

WANT = os.environ.get("JOBQ_TEST_REDIS_PY")


@pytest.mark.skipif(WANT is None, reason="runs in hack/test.sh's newest-redis-py step")
def test_the_tests_and_their_jobq_processes_import_the_redis_py_asked_for(
    settings: Settings,
) -> None:
    assert redis.__version__ == WANT
    child = subprocess.run(
        [sys.executable, "-c", "import redis, jobq.connection; print(redis.__version__)"],
        env=process_env(settings), capture_output=True, text=True, check=True, timeout=60)
    assert child.stdout.strip() == WANT
