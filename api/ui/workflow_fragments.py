"""The dashboard's workflow fragments (the listing and a workflow's page) and its retry action.
Behind the API's bearer auth like every fragment; actions are POSTs with the token header
(CSRF-safe as the job actions), answered in the API's JSON error shape."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from jobq.api.auth import caller
from jobq.api.deps import ClientDep
from jobq.api.ui.render import render
from jobq.api.ui.workflow_layout import BOX_H, BOX_W, layout
from jobq.errors import InvalidCursor, NotFound
from jobq.jobs import iso
from jobq.logs import get_logger
from jobq.workflows.views import WORKFLOW_STATES

router = APIRouter(prefix="/ui/f")
log = get_logger("jobq.api.ui")
PAGE = 50  # workflows per page of the listing
NODES_PAGE = 100  # nodes per page of a workflow's table
RetryMode = Literal["failed_only", "failed_and_downstream", "all"]


def _age(created_ms: int) -> str:
    """How long ago, in the largest unit that fits (s, min, h, d)."""
    seconds = max(0, int(time.time() - created_ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@router.get("/workflows")
async def workflows(
    request: Request, client: ClientDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    state = state if state in WORKFLOW_STATES else None
    try:
        page = await client.list_workflows(state, PAGE, cursor or None)
    except InvalidCursor as exc:
        return render(request, "error.html", 404, message=str(exc))
    return render(request, "workflows.html", page=page, state=state or "",
                  states=WORKFLOW_STATES, iso=iso, age=_age)


@router.get("/workflows/{workflow_id}")
async def workflow(
    request: Request, workflow_id: str, client: ClientDep,
    cursor: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    try:
        summary = await client.workflow_reads.summary(workflow_id)
        graph = await client.workflow_graph(workflow_id)
        nodes = await client.workflow_nodes(workflow_id, NODES_PAGE, cursor or None)
    except (NotFound, InvalidCursor) as exc:
        return render(request, "error.html", 404, message=str(exc))
    # wf-reopen's Workflows.retry may be missing on this base: offer retry only when it exists.
    can_retry = hasattr(client.workflows, "retry")
    return render(request, "workflow.html", wf=summary, graph=layout(graph), nodes=nodes,
                  iso=iso, can_retry=can_retry, box_w=BOX_W, box_h=BOX_H)


@router.post("/workflows/{workflow_id}/retry")
async def retry(request: Request, workflow_id: str, client: ClientDep,
                mode: Annotated[RetryMode, Query()] = "failed_only") -> Response:
    """The retry button: ``Workflows.retry(workflow_id, mode)`` where this version has it."""
    run = getattr(client.workflows, "retry", None)
    if run is None:
        raise NotFound("workflow retry is not available in this version")
    await client.workflow_reads.summary(workflow_id)  # 404 for an unknown workflow
    await run(workflow_id, mode)
    log.info("workflow.retry", workflow=workflow_id, mode=mode, by=caller(request.scope))
    return Response('{"status":"accepted"}', 202, media_type="application/json")
