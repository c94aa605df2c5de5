"""jobq: background jobs on Redis lists + Lua, with leases, retries, a DLQ and replay."""

# Settings first: its defaults come from jobq.keys, which must be analysed before the rest.
from jobq.settings import Settings, load_settings  # isort: skip
from jobq.client import Client, EnqueueResult, ReplayResult
from jobq.context import JobContext
from jobq.errors import JobqError, PermanentError, RetryLater
from jobq.flow import RateLimit
from jobq.jobs import Backoff, State
from jobq.sync import SyncClient
from jobq.tasks import Registry, Task, load_registry, task

__all__ = [
    "Backoff",
    "Client",
    "EnqueueResult",
    "JobContext",
    "JobqError",
    "PermanentError",
    "RateLimit",
    "Registry",
    "ReplayResult",
    "RetryLater",
    "Settings",
    "State",
    "SyncClient",
    "Task",
    "load_registry",
    "load_settings",
    "task",
]
