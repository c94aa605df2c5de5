"""Response bodies of the workflow read pages (``api/routes/workflow_reads.py``): the listing,
nodes, graph and results pages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from jobq.api.workflow_schemas import NodeState, PolicyName, WorkflowState


class WorkflowSummary(BaseModel):
    workflowId: str
    idempotencyKey: str
    state: WorkflowState
    counts: dict[str, int] = Field(description="Nodes per state.")
    nodes: int
    createdAt: str | None
    endedAt: str | None


class WorkflowList(BaseModel):
    items: list[WorkflowSummary]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null at "
                                                "the end. A page filtered by state may hold "
                                                "fewer items and still have a next one.")


class WorkflowNodeRow(BaseModel):
    key: str
    queue: str
    type: str
    jobId: str = Field(description="Its job's id (the job exists from the node's release on).")
    state: NodeState
    epoch: int = Field(description="Raised each time the node is run again (replay, retry).")
    waitingOn: list[str] = Field(description="Dependencies not ended yet (waiting nodes; the "
                                             "first 20).")
    waitingCount: int = Field(description="How many dependencies it still waits on.")
    deps: int = Field(description="Its dependencies.")
    error: str | None


class WorkflowNodePage(BaseModel):
    items: list[WorkflowNodeRow]
    nextCursor: str | None


class WorkflowGraphEntry(BaseModel):
    id: str = Field(description="`n<index>` for a node, `g<index>` for a group.")
    kind: str = Field(description="`node` or `group` (nodes alike in queue, type, "
                                  "dependencies and dependents, collapsed).")
    keys: list[str] = Field(description="The node's key, or the first keys of the group.")
    size: int
    queue: str
    type: str
    depth: int = Field(description="Longest path from a root.")
    counts: dict[str, int] = Field(description="Nodes per state.")
    state: NodeState | None = Field(None, description="A single node's state.")
    jobId: str | None = Field(None, description="A single node's job id.")
    waitingOn: list[str] = Field(default_factory=list)


class WorkflowGraphEdge(BaseModel):
    source: str
    target: str
    policy: PolicyName


class WorkflowGraph(BaseModel):
    workflowId: str
    state: WorkflowState
    entries: list[WorkflowGraphEntry]
    edges: list[WorkflowGraphEdge]


class WorkflowResultRow(BaseModel):
    key: str
    state: NodeState
    result: Any = Field(None, description="What a succeeded node returned.")
    error: str | None = Field(None, description="Why it failed, was cancelled or is dep_failed.")


class WorkflowResultPage(BaseModel):
    items: list[WorkflowResultRow]
    nextCursor: str | None
