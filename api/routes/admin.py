"""Operator actions: pause and resume a queue, cancel a job, list a queue's jobs by state,
replay the DLQ in bulk, discard a DLQ entry, and a queue's throughput. Every state change is a
POST (or DELETE) and is logged with who asked (a digest of the token, never the token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from jobq import admin, keys
from jobq.admin import JobCancel, QueuePause, Throughput
from jobq.api.auth import caller
from jobq.api.bodies import json_body, read_json
from jobq.api.deps import ClientDep
from jobq.api.errors import DESCRIPTIONS, HEADERS, error_response
from jobq.api.schemas import ErrorBody
from jobq.bulk_replay import BulkReplayRequest, BulkReplayResult, bulk_replay
from jobq.errors import JobFinished
from jobq.listing import JobPage, ListState, list_jobs

router = APIRouter(tags=["admin"])


def errors(**statuses: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries with this route's own wording (``e404="..."``), or the shared one
    when the text is empty."""
    out: dict[int | str, dict[str, Any]] = {}
    for name, text in statuses.items():
        status = int(name[1:])
        out[status] = {"model": ErrorBody, "description": text or DESCRIPTIONS[status]}
        if status in HEADERS:
            out[status]["headers"] = HEADERS[status]
    return out


UNKNOWN_QUEUE = "No job was ever created in this queue and no loaded task names it."


@router.post("/queues/{queue}/pause", operation_id="pause_queue", response_model=QueuePause,
             responses=errors(e401="", e404=UNKNOWN_QUEUE, e503=""))
async def pause_queue(queue: str, client: ClientDep, request: Request) -> QueuePause:
    """Pause a queue: workers start none of its jobs from their next claim on; it still
    accepts jobs, and running ones finish."""
    return await admin.set_paused(client, queue, True, who=caller(request.scope))


@router.post("/queues/{queue}/resume", operation_id="resume_queue", response_model=QueuePause,
             responses=errors(e401="", e404=UNKNOWN_QUEUE, e503=""))
async def resume_queue(queue: str, client: ClientDep, request: Request) -> QueuePause:
    """Resume a paused queue: workers claim its jobs again within a second."""
    return await admin.set_paused(client, queue, False, who=caller(request.scope))


@router.get("/queues/{queue}/jobs", operation_id="list_queue_jobs", response_model=JobPage,
            responses=errors(e401="", e404=UNKNOWN_QUEUE,
                             e422="Invalid state, limit or cursor.", e503=""))
async def list_queue_jobs(
    queue: str,
    client: ClientDep,
    state: Annotated[ListState, Query(description="Which jobs.")] = "waiting",
    limit: Annotated[int, Query(ge=1, le=keys.JOBS_PAGE_MAX,
                                description="Jobs per page.")] = 50,
    cursor: Annotated[str | None, Query(max_length=12, pattern=r"^[0-9]{1,12}$",
                                        description="nextCursor of the previous page.")] = None,
) -> JobPage:
    """A page of a queue's jobs in one state: waiting in queue order, delayed by due time,
    active by lease deadline, finished ones newest first."""
    return await list_jobs(client, await admin.known_queue(client, queue), state, limit, cursor)


@router.get("/queues/{queue}/throughput", operation_id="get_queue_throughput",
            response_model=Throughput,
            responses=errors(e401="", e404=UNKNOWN_QUEUE, e503=""))
async def get_queue_throughput(queue: str, client: ClientDep) -> Throughput:
    """Jobs completed and dead-lettered per minute over the last hour, oldest minute first."""
    return await admin.throughput(client, queue)


@router.post(
    "/jobs/{job_id}/cancel", operation_id="cancel_job", response_model=JobCancel,
    responses={
        200: {"description": "Cancelled now (state `cancelled`), or, for a running job "
                             "(state `active`), its worker was asked to cancel it."},
        **errors(e401="", e404="", e409="The job has finished already: nothing to cancel.",
                 e410="", e503=""),
    },
)
async def cancel_job(job_id: str, client: ClientDep, request: Request) -> JobCancel | Response:
    """Cancel a job: a waiting or delayed one never runs; a running one's handler is
    cancelled and its attempt ends `cancelled` (not a failure, no DLQ entry)."""
    try:
        return await admin.cancel_job(client, job_id, who=caller(request.scope))
    except JobFinished as exc:
        return error_response(409, "job_finished", str(exc))


@router.post("/dlq/replay", operation_id="replay_dlq_entries", response_model=BulkReplayResult,
             responses=errors(e401="", e413="", e415="", e422="", e503=""),
             openapi_extra=json_body("BulkReplayRequest"))
async def replay_dlq_entries(client: ClientDep, request: Request) -> BulkReplayResult:
    """Replay every DLQ entry that matches a filter (or a list of ids); `dryRun` only counts.
    With `idempotencyKey`, repeating the request makes no second job for any entry."""
    # Read like every other body of ours: malformed JSON is a 422, not Starlette's 400.
    body = await read_json(request, BulkReplayRequest)
    return await bulk_replay(client, body, who=caller(request.scope))


@router.delete("/dlq/{dlq_id}", operation_id="discard_dlq_entry", status_code=204,
               response_class=Response,
               responses={204: {"description": "The entry is gone (logged)."},
                          **errors(e401="", e404="", e503="")})
async def discard_dlq_entry(dlq_id: str, client: ClientDep, request: Request) -> Response:
    """Delete one DLQ entry on purpose; it can no longer be replayed. Logged with who."""
    await admin.discard_dlq_entry(client, dlq_id, who=caller(request.scope))
    return Response(status_code=204)
