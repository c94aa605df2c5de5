"""``/dlq``: the dead-letter queue, newest first, and explicit replay of its entries (R6, R7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from jobq.api.deps import ClientDep
from jobq.api.errors import documented, error_response
from jobq.api.routes.jobs import JOB_LINKS
from jobq.api.schemas import ReplayAccepted, ReplayRequest
from jobq.jobs import DlqEntry, DlqPage

router = APIRouter(tags=["dlq"])

MAX_PAGE = 500  # entries per page at most: each one is a Redis read


@router.get("/dlq", operation_id="list_dlq", response_model=DlqPage,
            responses=documented(401, 422, 503))
async def list_dlq(
    client: ClientDep,
    queue: Annotated[str | None, Query(description="Only this queue.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Entries per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=512,
                                        description="nextCursor of the previous page.")] = None,
) -> DlqPage | Response:
    """DLQ entries of every queue (or one), newest first, one page at a time."""
    if queue is not None and queue not in (known := await client.queues()):
        return error_response(422, "unknown_queue", f"unknown queue {queue!r}",
                              [{"known": known}])
    return await client.list_dlq(queue, limit, cursor)


@router.get("/dlq/{dlq_id}", operation_id="get_dlq_entry", response_model=DlqEntry,
            responses=documented(401, 404, 503))
async def get_dlq_entry(dlq_id: str, client: ClientDep) -> DlqEntry:
    """One DLQ entry as it was dead-lettered, with the replays made from it."""
    return await client.get_dlq_entry(dlq_id)


@router.post(
    "/dlq/{dlq_id}/replay",
    operation_id="replay_dlq_entry",
    status_code=202,
    response_model=ReplayAccepted,
    responses={202: {"description": "The new job was created (or, for a repeated key, found).",
                     "links": JOB_LINKS},
               **documented(401, 404, 409, 413, 422, 503)},
)
async def replay_dlq_entry(
    dlq_id: str,
    client: ClientDep,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> ReplayAccepted:
    """Create a new job from a DLQ entry; the entry only gains a line in its replays."""
    result = await client.replay(dlq_id, body.idempotencyKey if body else None)
    return ReplayAccepted(jobId=result.job_id, replayedFromJobId=result.replayed_from_job_id,
                          dlqId=result.dlq_id)
