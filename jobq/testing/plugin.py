"""The pytest plugin (entry point ``pytest11: jobq``): fixtures for testing your own tasks.

* ``jobq_server`` (session): an embedded Valkey (``pip install 'jobq[embedded]'``), started once;
* ``jobq_tasks``: the tasks ``jobq_env`` runs. Override it in your conftest.py (a list of task
  objects or a ``Registry``); by default the modules of ``JOBQ_TASKS``;
* ``jobq_env`` (async; needs pytest-asyncio): a ``JobqEnv`` on its own key prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq.embedded import ServerProcess, valkey_binary
from jobq.errors import ConfigError
from jobq.tasks import Registry, load_registry


@pytest.fixture(scope="session")
def jobq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One embedded Valkey for the session (each ``jobq_env`` has its own key prefix)."""
    try:
        binary = valkey_binary()
    except ConfigError as exc:
        pytest.skip(str(exc))
    data: Path = tmp_path_factory.mktemp("jobq-valkey")
    server = ServerProcess(binary, data).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def jobq_tasks() -> Registry:
    """The tasks of ``JOBQ_TASKS``; override this fixture to name yours."""
    from jobq.settings import load_settings

    return load_registry(load_settings().tasks)


try:
    import pytest_asyncio
except ImportError:  # without it there is no jobq_env: use ``JobqEnv.start`` in your own loop
    HAVE_ASYNC = False
else:
    HAVE_ASYNC = True

if HAVE_ASYNC:
    @pytest_asyncio.fixture
    async def jobq_env(jobq_server: ServerProcess, jobq_tasks: Any) -> AsyncIterator[Any]:
        """A worker on every queue of ``jobq_tasks`` and a client, in this test's loop."""
        from jobq.testing.env import JobqEnv

        async with JobqEnv.start(jobq_server.url, jobq_tasks) as env:
            yield env
