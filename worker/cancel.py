"""Cancelling a running job: the handler is stopped (async: task cancellation; sync: the
``ctx.cancelled`` flag) and the attempt ends ``cancelled`` (terminal, no retry, no DLQ entry).

The worker learns of a cancel through a lease renewal (``renew`` answers CANCEL_REQUESTED),
which the lease thread runs at once when the queue's cancel counter moves (see leases.py).
"""

from __future__ import annotations

from jobq.connection import REDIS_DOWN, retrying
from jobq.context import JobContext
from jobq.errors import LeaseLost
from jobq.keys import QueueKeys
from jobq.scripts import Claimed, Scripts
from jobq.settings import Settings
from jobq.worker.leases import LeaseTable
from jobq.worker.metrics import WorkerMetrics


async def end_cancelled(
    c: Claimed, ctx: JobContext, keys: QueueKeys, scripts: Scripts, settings: Settings,
    leases: LeaseTable, metrics: WorkerMetrics,
) -> None:
    """Write the attempt's end as ``cancelled``; a lost lease means someone else ended it."""
    leases.discard(keys.queue, c.job_id, c.token)
    try:
        async for attempt in retrying(give_up_after_s=settings.lease_s, max_wait_s=1.0):
            with attempt:
                await scripts.end_cancelled(keys, c.job_id, c.token, settings.completed_keep,
                                            settings.completed_max_age_s * 1000)
    except LeaseLost:
        ctx.log.warning("job.lease_lost", during="cancel")
        return
    except REDIS_DOWN as exc:
        ctx.log.error("job.cancel_not_recorded", redisError=str(exc))
        return
    metrics.cancelled.labels(keys.queue, c.type).inc()
    ctx.log.info("job.cancelled", running=True)
