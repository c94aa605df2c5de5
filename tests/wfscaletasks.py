"""Tasks and specs of the large-workflow tests (tests/test_workflow_scale.py): no-op nodes that
append ``<name> <attempt>`` to ``$JOBQ_TEST_EFFECTS_FILE`` (so a test counts runs), and a
creator a test runs as its own process and kills -9 between two creation chunks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.errors import RetryLater
from jobq.jobs import Backoff
from jobq.tasks import task
from jobq.workflows import Node, chain, group

QUEUE = "wf-s"


class Item(BaseModel):
    name: str


def _record(ctx: JobContext, name: str) -> None:
    path = os.environ.get("JOBQ_TEST_EFFECTS_FILE")
    if path:
        with open(path, "a") as out:
            out.write(f"{name} {ctx.attempt}\n")


@task("wf-s-node", queue=QUEUE, payload=Item, attempts=4, backoff=Backoff(delaySeconds=0.05))
async def wf_s_node(ctx: JobContext, p: Item) -> dict[str, Any]:
    _record(ctx, p.name)
    return {"name": p.name}


class Expand(BaseModel):
    name: str
    n: int


@task("wf-s-expand", queue=QUEUE, payload=Expand, attempts=3, backoff=Backoff(delaySeconds=0.05))
async def wf_s_expand(ctx: JobContext, p: Expand) -> dict[str, Any]:
    """Adds n nodes after itself that the join also waits on; the first attempt fails after
    adding (its retry adds again: nothing new), the second first tries another spec under
    an added key (a conflict, recorded)."""
    from jobq.workflows.dynamic import WorkflowNodeConflict

    _record(ctx, p.name)
    added = [item(f"x{i}").after(p.name) for i in range(p.n)]
    if ctx.attempt == 2:
        try:
            await ctx.add_workflow_nodes([Node("x0", "wf-s-node", {"name": "other"})])
        except WorkflowNodeConflict:
            _record(ctx, "conflict")
    await ctx.add_workflow_nodes(added, waited_by=["join"])
    if ctx.attempt == 1:
        raise RetryLater("the first attempt fails after adding", delay_s=0.05)
    return {"name": p.name}


@task("wf-s-sum", queue=QUEUE, payload=Item, attempts=1)
def wf_s_sum(ctx: JobContext, p: Item) -> dict[str, Any]:
    """A sync join: the keys of the dependencies it saw succeed."""
    _record(ctx, p.name)
    inputs = ctx.workflow_inputs_blocking()
    return {"name": p.name, "saw": sorted(inputs.results) if inputs else []}


def item(name: str) -> Node:
    return Node(name, "wf-s-node", {"name": name})


def fan(children: int) -> Any:
    """root -> ``children`` nodes -> join."""
    return chain(item("root"), group(*(item(f"c{i}") for i in range(children))), item("join"))


def fan_nodes(children: int) -> list[Node]:
    return [item("root"), *(item(f"c{i}").after("root") for i in range(children)),
            item("join").after(*(f"c{i}" for i in range(children)))]


async def _create_then_die(key: str, children: int, chunk_nodes: int, die_before: int) -> None:
    """Create ``fan_nodes(children)`` in chunks of ``chunk_nodes``; SIGKILL this process as
    chunk ``die_before`` (0-based) is about to be sent."""
    from jobq.client import Client
    from jobq.connection import connect
    from jobq.settings import load_settings
    from jobq.tasks import load_registry
    from jobq.workflows import service
    from jobq.workflows.scripts import WorkflowScripts

    service.CHUNK_NODES = chunk_nodes
    sent = 0
    real = WorkflowScripts.create_chunk

    async def counted(self: WorkflowScripts, *args: Any, **kw: Any) -> int:
        nonlocal sent
        if sent == die_before:
            os.kill(os.getpid(), signal.SIGKILL)
        sent += 1
        return await real(self, *args, **kw)

    WorkflowScripts.create_chunk = counted  # type: ignore[method-assign]
    settings = load_settings()
    client = Client(connect(settings.redis_url), load_registry(settings.tasks), settings)
    await client.create_workflow(key, fan_nodes(children))


if __name__ == "__main__":
    asyncio.run(_create_then_die(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                 int(sys.argv[4])))
