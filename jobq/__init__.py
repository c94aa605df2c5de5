"""jobq: background jobs on Redis lists + Lua, with leases, retries, a DLQ and replay."""

# Settings first: its defaults come from jobq.keys, which must be analysed before the rest.
from jobq.settings import Settings, load_settings  # isort: skip
from pathlib import Path as _Path

from jobq.client import Client, EnqueueResult, ReplayResult
from jobq.context import JobContext
from jobq.errors import (
    InvalidResult,
    JobCancelled,
    JobDeadLettered,
    JobFailed,
    JobqError,
    PermanentError,
    ResultTimeout,
    RetryLater,
)
from jobq.flow import RateLimit
from jobq.jobs import Backoff, State
from jobq.results import JobHandle, SyncJobHandle
from jobq.sync import SyncClient
from jobq.tasks import Registry, Task, load_registry, task

# From the repository root (``python -m jobq``, a script run there) this folder is imported
# instead of the installed package, and the subpackages the install maps to jobq.api,
# jobq.worker and jobq.operator sit beside it (api/, worker/, operator/), not in it: look there
# too. An installed jobq has no pyproject.toml next to its folder, so this changes nothing.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "api" / "__init__.py").is_file():
    __path__.append(str(_checkout))

__all__ = [
    "Backoff",
    "Client",
    "EnqueueResult",
    "InvalidResult",
    "JobCancelled",
    "JobContext",
    "JobDeadLettered",
    "JobFailed",
    "JobHandle",
    "JobqError",
    "PermanentError",
    "RateLimit",
    "Registry",
    "ReplayResult",
    "ResultTimeout",
    "RetryLater",
    "Settings",
    "State",
    "SyncClient",
    "SyncJobHandle",
    "Task",
    "load_registry",
    "load_settings",
    "task",
]
