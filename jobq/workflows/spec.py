"""A workflow written as plain data (a schedule file entry, a JobSchedule's ``spec.workflow``):
the same shape as the body of ``POST /workflows`` without its idempotency key, which each
firing derives from the schedule and the bucket. Pure: parsing and the graph check only, so the
scheduling core can validate a schedule before anything fires."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobq.jobs import Backoff
from jobq.workflows.graph import NODE_KEY_MAX, check
from jobq.workflows.model import Dep, Node, Policy

SCHEDULED_MAX_NODES = 1000  # as one POST /workflows: a schedule fires one bounded create call


class DepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(min_length=1, max_length=NODE_KEY_MAX)
    policy: Policy = "require"


class NodeOptionsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int | None = Field(None, ge=1, le=100)
    backoff: Backoff | None = None
    delaySeconds: float = Field(0, ge=0)
    priority: int | None = None


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=NODE_KEY_MAX)
    type: str = Field(min_length=1)
    payload: dict[str, Any] = {}
    options: NodeOptionsSpec = NodeOptionsSpec()
    deps: list[DepSpec] = []


class WorkflowSpec(BaseModel):
    """What a schedule fires instead of one job: ``nodes`` (a DAG) and ``failFast``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[NodeSpec] = Field(min_length=1, max_length=SCHEDULED_MAX_NODES)
    failFast: bool = False

    def to_nodes(self) -> list[Node]:
        """The nodes ``Client.create_workflow`` takes; raises WorkflowInvalid (unknown
        dependency, cycle, duplicate key)."""
        nodes = [Node(n.key, n.type, dict(n.payload),
                      tuple(Dep(d.node, d.policy) for d in n.deps),
                      attempts=n.options.attempts, backoff=n.options.backoff,
                      delay_s=n.options.delaySeconds, priority=n.options.priority)
                 for n in self.nodes]
        check(nodes)
        return nodes
