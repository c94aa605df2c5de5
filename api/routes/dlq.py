"""``/dlq``: the dead-letter queue, newest first, and explicit replay of its entries (R6, R7)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from jobq.api.bodies import json_body, read_optional_json
from jobq.api.deps import ClientDep
from jobq.api.errors import documented, error_response
from jobq.api.routes.jobs import JOB_LINKS
from jobq.api.schemas import ErrorBody, ReplayAccepted, ReplayRequest
from jobq.jobs import DlqEntry, DlqPage

router = APIRouter(tags=["dlq"])

MAX_PAGE = 500  # entries per page at most: each one is a Redis read
CURSOR = r"^[0-9]+:.+-[0-9]+$"  # what list_dlq hands out: <failedAt ms>:<dlqId>


def _dlq_links(dlq_id: str) -> dict[str, Any]:
    """OpenAPI links from an answer holding a DLQ id (at ``dlq_id``, a JSON pointer) to the
    operations that take one, so clients and fuzzers reach them with real ids."""
    where = f"$response.body#{dlq_id}"
    return {
        "GetDlqEntry": {"operationId": "get_dlq_entry", "parameters": {"dlq_id": where}},
        "ReplayDlqEntry": {"operationId": "replay_dlq_entry", "parameters": {"dlq_id": where}},
    }


@router.get("/dlq", operation_id="list_dlq", response_model=DlqPage,
            responses={200: {"description": "A page of DLQ entries.",
                             "links": _dlq_links("/items/0/dlqId")},
                       **documented(401, 422, 503)})
async def list_dlq(
    client: ClientDep,
    queue: Annotated[str | None, Query(min_length=1, description="Only this queue.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Entries per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=512, pattern=CURSOR,
                                        description="nextCursor of the previous page.")] = None,
) -> DlqPage | Response:
    """DLQ entries of every queue (or one), newest first, one page at a time."""
    if queue is not None and queue not in (known := await client.queues()):
        return error_response(422, "unknown_queue", f"unknown queue {queue!r}",
                              [{"known": known}])
    return await client.list_dlq(queue, limit, cursor)


@router.get("/dlq/{dlq_id}", operation_id="get_dlq_entry", response_model=DlqEntry,
            responses={200: {"description": "The DLQ entry.", "links": _dlq_links("/dlqId")},
                       **documented(401, 404, 503)})
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
               **documented(401, 404, 409, 413, 415, 422, 503),
               409: {"model": ErrorBody,
                     "description": "The idempotency key was already used with another "
                                    "request (conflict), or the entry is a node of a cancelled "
                                    "workflow (workflow_busy: retry the workflow instead)."}},
    openapi_extra=json_body("ReplayRequest", required=False),
)
async def replay_dlq_entry(dlq_id: str, client: ClientDep, request: Request) -> ReplayAccepted:
    """Create a new job from a DLQ entry; the entry only gains a line in its replays. The
    entry of a workflow node reopens its workflow: the node runs again under a new epoch (that
    job's id is answered) and its dep_failed descendants after it."""
    # The body is read like POST /jobs reads its own: malformed JSON is a 422 in both.
    body = await read_optional_json(request, ReplayRequest)
    result = await client.replay(dlq_id, body.idempotencyKey if body else None)
    return ReplayAccepted(jobId=result.job_id, replayedFromJobId=result.replayed_from_job_id,
                          dlqId=result.dlq_id)
