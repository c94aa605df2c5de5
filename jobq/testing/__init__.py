"""Testing your own tasks, at two levels with production's serialization and no global flag:

* ``run_task(task, payload)``: the handler called directly with a ``TestContext`` (no server);
* ``JobqEnv`` (pytest fixture ``jobq_env``): the real client, worker loop and Lua scripts in
  this process, on an embedded Valkey.

The pytest plugin (``jobq.testing.plugin``, loaded by entry point) gives the fixtures."""

from jobq.testing.direct import TaskRun, TestContext, run_task, test_context
from jobq.testing.env import JobqEnv

__all__ = ["JobqEnv", "TaskRun", "TestContext", "run_task", "test_context"]
