"""``/workers``: the live workers, from the heartbeats each writes per queue."""

from __future__ import annotations

from fastapi import APIRouter

from jobq import admin
from jobq.admin import WorkerList
from jobq.api.deps import ClientDep
from jobq.api.errors import documented

router = APIRouter(tags=["workers"])


@router.get("/workers", operation_id="list_workers", response_model=WorkerList,
            responses=documented(401, 503))
async def list_workers(client: ClientDep) -> WorkerList:
    """Every worker with a heartbeat: pod, queues, concurrency, jobs in flight, last seen;
    `stale` after three missed heartbeats (it is dropped after thirty seconds)."""
    return await admin.list_workers(client)
