"""Shared pieces of the workflow tests: settings with the workflow tasks, a worker on both
workflow queues, node run counts and waiting for a workflow's end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fixtures import eventually

from jobq.client import Client
from jobq.workflows import Node, WorkflowView

WF_TASKS = "jobq.demo,testtasks,wftasks"
FINAL = ("succeeded", "failed", "cancelled")


def a(name: str, add: int = 0, **payload: object) -> Node:
    return Node(name, "wf-a", {"name": name, "add": add, **payload})


def b(name: str, add: int = 0, **payload: object) -> Node:
    return Node(name, "wf-b", {"name": name, "add": add, **payload})


def runs(effects: Path) -> Counter[str]:
    """How many attempts each node name started."""
    if not effects.exists():
        return Counter()
    return Counter(line.split()[0] for line in effects.read_text().splitlines() if line)


async def ended(client: Client, workflow_id: str, timeout: float = 30.0) -> WorkflowView:
    async def check() -> WorkflowView | None:
        view = await client.get_workflow(workflow_id, results=True)
        return view if view.state in FINAL else None

    view = await eventually(check, timeout=timeout, what=f"workflow {workflow_id} to end")
    assert await client.workflows.check(workflow_id) == []  # every counter agrees with states
    return view


def node(view: WorkflowView, key: str):  # type: ignore[no-untyped-def]
    return next(n for n in view.nodes if n.key == key)
