"""``/workflows``: create a DAG of jobs once per idempotency key, read it, cancel it (R24)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from jobq.api.auth import caller
from jobq.api.bodies import json_body, read_json, read_optional_json
from jobq.api.deps import ClientDep
from jobq.api.errors import documented
from jobq.api.schemas import ErrorBody
from jobq.api.workflow_schemas import (
    WorkflowAccepted,
    WorkflowCreate,
    WorkflowNode,
    WorkflowNodeCreate,
    WorkflowPublic,
    WorkflowRetry,
)
from jobq.client import Client
from jobq.errors import NotFound
from jobq.jobs import iso
from jobq.logs import get_logger
from jobq.workflows import Dep, Node, WorkflowView
from jobq.workflows.keys import is_workflow_id

router = APIRouter(tags=["workflows"])
log = get_logger("jobq.api.workflows")


def _node(n: WorkflowNodeCreate) -> Node:
    o = n.options
    return Node(n.key, n.type, n.payload, tuple(Dep(d.node, d.policy) for d in n.deps),
                attempts=o.attempts if o else None, backoff=o.backoff if o else None,
                delay_s=o.delaySeconds if o else 0.0, priority=o.priority if o else None,
                callback=n.callback)


def public(view: WorkflowView) -> WorkflowPublic:
    return WorkflowPublic(
        workflowId=view.workflow_id, idempotencyKey=view.idempotency_key,
        state=view.state, counts=view.counts, failFast=view.fail_fast,
        createdAt=iso(view.created_at_ms), endedAt=iso(view.ended_at_ms),
        nodes=[WorkflowNode(key=n.key, queue=n.queue, type=n.type, jobId=n.job_id,
                            state=n.state, waitingOn=n.waiting_on,
                            deps=n.deps, error=n.error, result=n.result, epoch=n.epoch)
               for n in view.nodes],
        episode=view.episode)


def _known(workflow_id: str) -> str:
    if not is_workflow_id(workflow_id):
        raise NotFound(f"no workflow {workflow_id}")
    return workflow_id


@router.post(
    "/workflows",
    operation_id="create_workflow",
    status_code=202,
    response_model=WorkflowAccepted,
    responses={
        202: {"description": "Created: the workflow is stored and its first nodes released."},
        200: {"model": WorkflowAccepted,
              "description": "A repeat of an earlier request with this key and the same "
                             "spec: the same workflow and job ids; nothing runs twice."},
        **documented(401, 409, 413, 415, 422, 503),
    },
    openapi_extra=json_body(WorkflowCreate.__name__),
)
async def create_workflow(request: Request) -> Response:
    """Create a workflow (a DAG of jobs in any queues) once per idempotency key: 202 when new,
    200 for the same spec again, 409 for another spec under the key, 422 for a cycle, an
    unknown dependency or a node's invalid job."""
    body = await read_json(request, WorkflowCreate)
    client: Client = request.app.state.client
    created = await client.create_workflow(body.idempotencyKey,
                                           [_node(n) for n in body.nodes],
                                           fail_fast=body.failFast)
    log.info("workflow.created", workflow=created.workflow_id, nodes=len(body.nodes),
             duplicate=created.duplicate, by=caller(request.scope))
    content = orjson.dumps({"status": "accepted", "workflowId": created.workflow_id,
                            "duplicate": created.duplicate, "jobs": created.jobs})
    return Response(content, 200 if created.duplicate else 202, media_type="application/json")


@router.get("/workflows/{workflow_id}", operation_id="get_workflow", response_model=WorkflowPublic,
            responses=documented(401, 404, 422, 503))
async def get_workflow(
    workflow_id: str, client: ClientDep,
    results: Annotated[bool, Query(description="Include each succeeded node's result.")] = False,
) -> WorkflowPublic:
    """The workflow's state, its node counts per state and every node: its job id, state,
    what it waits on, its error (and result)."""
    return public(await client.get_workflow(_known(workflow_id), results=results))


@router.post("/workflows/{workflow_id}/cancel", operation_id="cancel_workflow",
             response_model=WorkflowPublic, responses=documented(401, 404, 503))
async def cancel_workflow(workflow_id: str, client: ClientDep, request: Request) -> WorkflowPublic:
    """Cancel every node not ended: waiting and queued ones at once, running ones through their
    workers (cooperative cancel). Nothing starts afterwards; cancelling again changes nothing."""
    view = await client.cancel_workflow(_known(workflow_id))
    log.info("workflow.cancel", workflow=workflow_id, by=caller(request.scope))
    return public(view)


@router.post("/workflows/{workflow_id}/retry", operation_id="retry_workflow",
             response_model=WorkflowPublic,
             responses={**documented(401, 404, 415, 422, 503),
                        409: {"model": ErrorBody,
                              "description": "The workflow still runs or cancels."}},
             openapi_extra=json_body(WorkflowRetry.__name__, required=False))
async def retry_workflow(workflow_id: str, client: ClientDep, request: Request) -> WorkflowPublic:
    """Run nodes of an ended workflow again, each under a new epoch (new job ids) and in
    dependency order: ``failed_only`` (default), ``failed_and_downstream`` or ``all``. 409
    while the workflow runs or cancels."""
    body = await read_optional_json(request, WorkflowRetry) or WorkflowRetry()
    view = await client.retry_workflow(_known(workflow_id), body.mode)
    log.info("workflow.retry", workflow=workflow_id, mode=body.mode, by=caller(request.scope))
    return public(view)
