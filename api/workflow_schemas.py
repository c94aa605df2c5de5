"""Request and response bodies of the workflow routes (``api/routes/workflows.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from jobq.api.schemas import STRICT, IdempotencyKey, JobOptions, Text
from jobq.workflows.graph import NODE_KEY_MAX

HTTP_MAX_NODES = 1000  # nodes one POST /workflows may carry (bounded request and script time)

NodeKey = Text
NodeState = Literal["waiting", "released", "succeeded", "failed", "cancelled", "dep_failed",
                    "skipped"]
WorkflowState = Literal["creating", "running", "cancelling", "succeeded", "failed", "cancelled"]
PolicyName = Literal["require", "ignore", "continue"]


class WorkflowDep(BaseModel):
    """An edge: the node waits on node ``node``."""

    model_config = STRICT

    node: NodeKey = Field(min_length=1, max_length=NODE_KEY_MAX)
    policy: PolicyName = Field(
        "require", description="require: a failed or cancelled dependency makes this node "
        "dep_failed; ignore: it counts as satisfied (its error is shown to this node); "
        "continue: a failed dependency releases this node at once.")


class WorkflowNodeCreate(BaseModel):
    """One node: a job of any registered task, known in its workflow by ``key``."""

    model_config = STRICT

    key: NodeKey = Field(min_length=1, max_length=NODE_KEY_MAX,
                         description="Stable within the workflow; names it in dependencies.")
    type: Text = Field(min_length=1, max_length=200, description="A registered task type.")
    payload: dict[str, Any] = Field(description="JSON object checked against the task's model.")
    options: JobOptions | None = None
    deps: list[WorkflowDep] = Field(default_factory=list, max_length=HTTP_MAX_NODES)
    callback: Literal["on_success", "on_failure"] | None = Field(
        None, description="on_success: runs at most once ever (a retry never re-runs it once "
        "it succeeded). on_failure: runs once its dependencies (give them policy ignore) have "
        "all ended and one failed, was cancelled or is dep_failed; otherwise it ends skipped.")


class WorkflowCreate(BaseModel):
    """``POST /workflows``: a DAG of jobs, created once per idempotency key."""

    model_config = STRICT

    idempotencyKey: IdempotencyKey
    nodes: list[WorkflowNodeCreate] = Field(max_length=HTTP_MAX_NODES)
    failFast: bool = Field(False, description="The first failure cancels every node not "
                                              "ended yet.")


class WorkflowAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    workflowId: str
    duplicate: bool
    jobs: dict[str, str] = Field(description="Node key -> its job's id (the job exists from "
                                             "the node's release on).")


class WorkflowNodeDep(BaseModel):
    node: str
    policy: PolicyName
    state: NodeState


class WorkflowNode(BaseModel):
    key: str
    queue: str
    type: str
    jobId: str
    state: NodeState
    waitingOn: list[str] = Field(description="Dependencies not ended yet (waiting nodes).")
    deps: list[WorkflowNodeDep]
    error: str | None = Field(None, description="Why it failed, was cancelled, or "
                                                "`dep_failed: <dependency>`.")
    result: Any = Field(None, description="Its result (with ?results=true).")
    epoch: int = Field(0, description="Times it was reopened (DLQ replay, retry); its jobId "
                                      "is that epoch's job.")


class WorkflowPublic(BaseModel):
    workflowId: str
    idempotencyKey: str
    state: WorkflowState
    counts: dict[str, int] = Field(description="Nodes per state.")
    failFast: bool
    createdAt: str | None
    endedAt: str | None
    nodes: list[WorkflowNode]
    episode: int = Field(0, description="Times it ran again after it had ended (DLQ replay, "
                                        "retry).")


class WorkflowRetry(BaseModel):
    """``POST /workflows/{id}/retry``: which nodes of an ended workflow run again."""

    model_config = STRICT

    mode: Literal["failed_only", "failed_and_downstream", "all"] = Field(
        "failed_only", description="failed_only: the failed, cancelled and dep_failed nodes; "
        "failed_and_downstream: those and every node downstream of them; all: every node "
        "(an on_success callback that succeeded never runs twice). Each runs under a new "
        "epoch (new job ids), in dependency order.")
