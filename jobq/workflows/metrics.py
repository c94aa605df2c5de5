"""The workflow duration histogram: observed by the process whose script call ended the
workflow (a worker's relay for almost every workflow, the API for a cancel that ends one at
once), so each workflow is counted once across all processes."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from jobq.logs import get_logger
from jobq.workflows.keys import WorkflowKeys
from jobq.workflows.scripts import FINAL_STATES, WorkflowScripts

log = get_logger("jobq.workflows")

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)


def duration_histogram(registry: CollectorRegistry) -> Histogram:
    histogram = Histogram("jobq_workflow_duration_seconds",
                          "Time from a workflow's creation to its end, by final state.",
                          ("state",), buckets=DURATION_BUCKETS, registry=registry)
    for state in FINAL_STATES:  # every series from the start: rate() sees the first one
        histogram.labels(state)
    return histogram


def observe_ends(wf: WorkflowScripts, histogram: Histogram) -> None:
    """Observe into ``histogram`` every workflow that a call of ``wf`` ends."""

    async def ended(wk: WorkflowKeys, state: str) -> None:
        redis: Any = wf.scripts.redis
        try:
            created, finished = await redis.hmget(wk.meta, "createdAt", "endedAt")
        except Exception as exc:  # a metric must never fail the relay's step
            log.warning("workflow.duration_unread", workflow=wk.id, error=repr(exc))
            return
        if created and finished:
            histogram.labels(state).observe(max(0, int(finished) - int(created)) / 1000)

    wf.ended = ended
