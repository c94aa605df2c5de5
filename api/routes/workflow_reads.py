"""The workflow read pages (R24): the listing, a workflow's nodes, graph and results, paged,
and its node state changes as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query

from jobq.api.deps import ClientDep, SettingsDep
from jobq.api.errors import documented
from jobq.api.routes.events import EventStream, _json_errors
from jobq.api.workflow_read_schemas import (
    WorkflowGraph,
    WorkflowGraphEdge,
    WorkflowGraphEntry,
    WorkflowList,
    WorkflowNodePage,
    WorkflowNodeRow,
    WorkflowResultPage,
    WorkflowResultRow,
    WorkflowSummary,
)
from jobq.api.workflow_schemas import WorkflowState
from jobq.connection import REDIS_DOWN
from jobq.errors import NotFound
from jobq.jobs import dumps, iso
from jobq.settings import Settings
from jobq.workflows.service import STATE_NAMES
from jobq.workflows.views import FINAL, Graph, Summary, WorkflowReads, changed

router = APIRouter(tags=["workflows"])
MAX_PAGE = 1000  # items per page at most
CURSOR = r"^[0-9]{1,12}$"  # what the pages hand out: the next position
POLL_S = 0.25  # how often a stream reads the workflow's counts
POLL_LARGE_S = 2.0  # ... for a workflow of more than LARGE nodes (a change re-reads every state)
LARGE = 1000
NODE_EVENT_CHUNK = 500  # nodes whose keys one read fetches

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=12, pattern=CURSOR,
                                     description="`nextCursor` of the previous page.")]
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["workflow", "node", "end"]},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "`workflow` and `end`: the workflow's summary "
                                "(`WorkflowSummary`); `node`: `{key, state, jobId, error}`."},
    },
}


def summary_public(s: Summary) -> WorkflowSummary:
    return WorkflowSummary(workflowId=s.workflow_id, idempotencyKey=s.idempotency_key,
                           state=s.state, counts=s.counts, nodes=s.nodes,
                           createdAt=iso(s.created_at_ms), endedAt=iso(s.ended_at_ms))


def graph_public(g: Graph) -> WorkflowGraph:
    return WorkflowGraph(
        workflowId=g.workflow_id, state=g.state,
        entries=[WorkflowGraphEntry(id=e.id, kind="node" if e.state else "group", keys=e.keys,
                                    size=e.size, queue=e.queue, type=e.type, depth=e.depth,
                                    counts=e.counts, state=e.state,
                                    jobId=e.job_id, waitingOn=e.waiting_on)
                 for e in g.entries],
        edges=[WorkflowGraphEdge(source=e.source, target=e.target,
                                 policy=e.policy)
               for e in g.edges])


@router.get("/workflows", operation_id="list_workflows", response_model=WorkflowList,
            responses=documented(401, 422, 503))
async def list_workflows(
    client: ClientDep, limit: Limit = 50, cursor: Cursor = None,
    state: Annotated[WorkflowState | None, Query(description="Only workflows in this "
                                                             "state.")] = None,
) -> WorkflowList:
    """The workflows still kept (until their retention ends), newest first."""
    page = await client.list_workflows(state, limit, cursor)
    return WorkflowList(items=[summary_public(s) for s in page.items],
                        nextCursor=page.next_cursor)


@router.get("/workflows/{workflow_id}/nodes", operation_id="get_workflow_nodes",
            response_model=WorkflowNodePage, responses=documented(401, 404, 422, 503))
async def get_workflow_nodes(workflow_id: str, client: ClientDep, limit: Limit = 100,
                             cursor: Cursor = None) -> WorkflowNodePage:
    """A workflow's nodes in the order of its spec: each one's key, queue, state, job id,
    epoch and what it still waits on."""
    page = await client.workflow_nodes(workflow_id, limit, cursor)
    return WorkflowNodePage(
        items=[WorkflowNodeRow(key=n.key, queue=n.queue, type=n.type, jobId=n.job_id,
                               state=n.state, epoch=n.epoch,
                               waitingOn=n.waiting_on, waitingCount=n.waiting_count,
                               deps=n.deps, error=n.error) for n in page.items],
        nextCursor=page.next_cursor)


@router.get("/workflows/{workflow_id}/graph", operation_id="get_workflow_graph",
            response_model=WorkflowGraph, responses=documented(401, 404, 503))
async def get_workflow_graph(workflow_id: str, client: ClientDep) -> WorkflowGraph:
    """Nodes and edges with their policies; nodes alike (same queue, type, dependencies and
    dependents, four or more) are one `group` entry with counts per state."""
    return graph_public(await client.workflow_graph(workflow_id))


@router.get("/workflows/{workflow_id}/results", operation_id="get_workflow_results",
            response_model=WorkflowResultPage, responses=documented(401, 404, 422, 503))
async def get_workflow_results(workflow_id: str, client: ClientDep, limit: Limit = 100,
                               cursor: Cursor = None) -> WorkflowResultPage:
    """Ended nodes, in the order of the spec: key → result or error. They outlive the node
    jobs (trimmed by their queues) until the workflow's retention ends. A page covers `limit`
    nodes and lists the ended ones among them."""
    page = await client.workflow_results(workflow_id, limit, cursor)
    return WorkflowResultPage(
        items=[WorkflowResultRow(key=r.key, state=r.state,
                                 result=r.result, error=r.error) for r in page.items],
        nextCursor=page.next_cursor)


def _frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {dumps(data)}\n\n".encode()


async def _node_frames(wf: WorkflowReads, wf_id: str, idx: list[int],
                       states: dict[int, str]) -> AsyncIterator[bytes]:
    wk = wf.keys(wf_id)
    redis: Any = wf.redis
    for at in range(0, len(idx), NODE_EVENT_CHUNK):
        chunk = [str(i) for i in idx[at:at + NODE_EVENT_CHUNK]]
        specs, err = await asyncio.gather(redis.hmget(wk.key("nodes"), chunk),
                                          redis.hmget(wk.key("err"), chunk))
        for i, spec, error in zip(chunk, specs, err, strict=True):
            if spec is None:
                continue
            s = json.loads(spec)
            view = STATE_NAMES.get(states[int(i)], "unknown")
            yield _frame("node", {"key": s["k"], "state": view, "jobId": s["id"],
                                  "error": error})


async def workflow_frames(wf: WorkflowReads, settings: Settings,
                          wf_id: str) -> AsyncIterator[bytes]:
    """``workflow`` (its summary) at once and when its state changes, ``node`` for each node
    whose state changed, ``end`` after the final state, then the stream ends (or after
    ``events_max_s``). Node outcomes reach a workflow through its relays, not through the
    queues' event streams, so the workflow's counts are read every POLL_S: one HMGET per
    stream, and every node's state only when they moved."""
    loop = asyncio.get_running_loop()
    end = loop.time() + settings.events_max_s
    try:
        summary = await wf.summary(wf_id)
        states = await wf.states(wf_id)
        yield _frame("workflow", summary_public(summary).model_dump(mode="json"))
        beat = loop.time()
        while summary.state not in FINAL and loop.time() < end:
            await asyncio.sleep(POLL_S if summary.nodes <= LARGE else POLL_LARGE_S)
            now = await wf.summary(wf_id)
            sent = False
            if now.counts != summary.counts:
                fresh = await wf.states(wf_id)
                moved = sorted(changed(states, fresh))
                states = fresh
                async for chunk in _node_frames(wf, wf_id, moved, states):
                    sent = True
                    yield chunk
            if now.state != summary.state:
                sent = True
                yield _frame("workflow", summary_public(now).model_dump(mode="json"))
            summary = now
            if sent:
                beat = loop.time()
            elif loop.time() - beat >= settings.events_heartbeat_s:
                beat = loop.time()
                yield b": heartbeat\n\n"
        if summary.state in FINAL:
            yield _frame("end", summary_public(summary).model_dump(mode="json"))
    except (NotFound, *REDIS_DOWN):
        return  # expired, or Redis went away: the client reconnects and hears why


@router.get(
    "/workflows/{workflow_id}/events", operation_id="get_workflow_events",
    response_class=EventStream,
    responses={200: {"description": (
        "Server-Sent Events: `workflow` (its summary) at once and on every change of its "
        "state, `node` for every node whose state changed, a comment as heartbeat when idle, "
        "`end` with the final summary, after which the stream ends (or after "
        "JOBQ_EVENTS_MAX_S: reconnect)."),
        "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}},
        **_json_errors(401, 404, 503)},
)
async def get_workflow_events(workflow_id: str, client: ClientDep,
                              settings: SettingsDep) -> EventStream:
    """Follow a workflow live: its nodes' state changes and its end, as Server-Sent Events."""
    wf = client.workflow_reads
    await wf.summary(workflow_id)  # 404 / 503 before the stream starts
    return EventStream(workflow_frames(wf, settings, workflow_id),
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
