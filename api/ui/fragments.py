"""The dashboard's data: HTML fragments rendered on the server (autoescaped) from the same
core calls the JSON API makes. They sit behind the API's bearer auth like every route; the
pages' script fetches them with the token header and swaps them in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from jobq import admin
from jobq.api.deps import ClientDep
from jobq.api.ui.render import render
from jobq.errors import InvalidCursor, NotFound
from jobq.jobs import DlqEntry
from jobq.listing import LIST_STATES, ListState, list_jobs

router = APIRouter(prefix="/ui/f")
PAGE = 50  # rows per page of a queue's jobs and of the DLQ


@router.get("/overview")
async def overview(request: Request, client: ClientDep) -> Response:
    found = await admin.overview(client)
    return render(request, "overview.html", queues=found.queues, workers=found.workers)


@router.get("/queues/{queue}")
async def queue(
    request: Request, queue: str, client: ClientDep,
    state: Annotated[ListState, Query()] = "waiting",
    cursor: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    try:
        await admin.known_queue(client, queue)
        page = await list_jobs(client, queue, state, PAGE, cursor)
    except (NotFound, InvalidCursor) as exc:
        return render(request, "error.html", 404, message=str(exc))
    counts = await client.queue_counts(queue)
    return render(request, "queue.html", queue=queue, counts=counts, page=page,
                  states=LIST_STATES, state=state)


@router.get("/jobs/{job_id}")
async def job(request: Request, job_id: str, client: ClientDep) -> Response:
    try:
        record = await client.get_job(job_id)
    except NotFound as exc:
        return render(request, "error.html", 404, message=str(exc))
    entry: DlqEntry | None = None
    if record.deadLetterId:
        try:
            entry = await client.get_dlq_entry(record.deadLetterId)
        except NotFound:
            entry = None
    return render(request, "job.html", job=record, entry=entry)


@router.get("/dlq")
async def dlq(
    request: Request, client: ClientDep,
    queue: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    queues = await client.queues()
    queue = queue or None
    if queue is not None and queue not in queues:
        return render(request, "error.html", 404, message=f"unknown queue {queue!r}")
    try:
        page = await client.list_dlq(queue, PAGE, cursor or None)
    except InvalidCursor as exc:
        return render(request, "error.html", 404, message=str(exc))
    items = [e for e in page.items if (not type or e.type == type)
             and (not reason or reason in (e.failedReason or ""))]
    return render(request, "dlq.html", items=items, next_cursor=page.nextCursor, queues=queues,
                  queue=queue or "", type=type or "", reason=reason or "")
