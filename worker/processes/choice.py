"""Which queues get a pool of children, and how big."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.processes.pool import ProcessPool

if TYPE_CHECKING:
    from jobq.worker.runner import QueueSpec


def pool_for(spec: QueueSpec, settings: Settings, registry: Registry,
             metrics: WorkerMetrics) -> ProcessPool | None:
    """A pool for the queue when any of its tasks runs in processes (its own ``executor``, else
    the worker's); as many children as ``settings.children``, else the queue's concurrency."""
    if not any((t.executor or settings.executor) == "process"
               for t in registry if t.queue == spec.name):
        return None
    return ProcessPool(settings.children or spec.concurrency, settings, spec.name, metrics)
