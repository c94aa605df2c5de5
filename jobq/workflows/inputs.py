"""What a workflow node's handler reads of its dependencies (``JobContext.workflow_inputs``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobq.connection import result_of
from jobq.keys import QueueKeys
from jobq.scripts import Scripts
from jobq.workflows.scripts import WorkflowScripts


@dataclass(frozen=True, slots=True)
class WorkflowInputs:
    """The dependencies of one node: ``results`` of those that succeeded, by node key, and
    ``errors`` of the others (an ``ignore`` or ``continue`` edge lets a node run after a
    failure: it sees why here). Both in the order the node lists its dependencies."""

    workflow_id: str
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


async def read_inputs(scripts: Scripts, q: QueueKeys, job_id: str) -> WorkflowInputs | None:
    """The inputs of job ``job_id``, or None when it is no workflow's node."""
    wf = await result_of(scripts.redis.hget(q.job(job_id), "wf"))
    if not wf:
        return None
    wf_id, idx, _ = str(wf).split("|")
    ws = WorkflowScripts(scripts, q.prefix)
    inputs = WorkflowInputs(wf_id)
    for key, state, data in await ws.inputs(ws.keys(wf_id), int(idx)):
        if state == "S":
            inputs.results[key] = json.loads(data) if data else None
        else:
            inputs.errors[key] = data or state
    return inputs
