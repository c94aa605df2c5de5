"""``/queues``: how many jobs each queue holds in each state."""

from __future__ import annotations

from fastapi import APIRouter

from jobq.api.deps import ClientDep
from jobq.api.errors import documented
from jobq.api.schemas import QueueCounts, QueueList

router = APIRouter(tags=["queues"])


@router.get("/queues", operation_id="list_queues", response_model=QueueList,
            responses=documented(401, 503))
async def list_queues(client: ClientDep) -> QueueList:
    """Jobs per state (waiting, active, delayed, completed, failed, dlq) in every queue."""
    counts = await client.counts()
    return QueueList(queues=[QueueCounts(queue=q, **c) for q, c in counts.items()])
