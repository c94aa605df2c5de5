"""``jobq workflows``: show, list, cancel, retry and check workflows (R24). ``--json`` prints what
``GET /workflows/{id}`` answers."""

from __future__ import annotations

import click
import orjson

from jobq.cli.common import EXIT_ERROR, fail, open_client, run_async
from jobq.jobs import iso
from jobq.workflows import WorkflowView
from jobq.workflows.keys import is_workflow_id
from jobq.workflows.reopen import RETRY_MODES


def _as_json(view: WorkflowView) -> str:
    from jobq.api.routes.workflows import public  # the API's own shape, only for --json

    return orjson.dumps(public(view).model_dump(mode="json"),
                        option=orjson.OPT_INDENT_2).decode()


def _summary(view: WorkflowView) -> str:
    counts = " ".join(f"{k}={v}" for k, v in view.counts.items() if v)
    return f"{view.workflow_id}\t{view.state}\t{counts or 'no nodes'}\t{view.idempotency_key}"


def _known(workflow_id: str) -> str:
    if not is_workflow_id(workflow_id):
        fail(f"not a workflow id: {workflow_id!r} (32 hex characters)")
    return workflow_id


@click.group("workflows")
def workflows() -> None:
    """Workflows: DAGs of jobs across queues."""


@workflows.command("show")
@click.argument("workflow_id")
@click.option("--results", is_flag=True, help="Also each succeeded node's result.")
@click.option("--json", "as_json", is_flag=True, help="Print the GET /workflows/{id} body.")
def show(workflow_id: str, results: bool, as_json: bool) -> None:
    """A workflow's state and each node: its job id, state, what it waits on. Exits 3 when
    unknown."""

    async def go() -> None:
        async with open_client() as client:
            view = await client.get_workflow(_known(workflow_id), results=results)
        if as_json:
            click.echo(_as_json(view))
            return
        click.echo(_summary(view))
        click.echo(f"created {iso(view.created_at_ms)}"
                   + (f", ended {iso(view.ended_at_ms)}" if view.ended_at_ms else ""))
        for n in view.nodes:
            extra = f"\twaits on {', '.join(n.waiting_on)}" if n.waiting_on else ""
            extra += f"\t{n.error}" if n.error else ""
            extra += f"\t{orjson.dumps(n.result).decode()}" if results and n.result else ""
            click.echo(f"  {n.key}\t{n.state}\t{n.queue}\t{n.job_id}{extra}")

    run_async(go)


@workflows.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def list_(limit: int) -> None:
    """The newest workflows still kept, one a line."""

    async def go() -> None:
        async with open_client() as client:
            for view in await client.workflows.recent(limit):
                click.echo(_summary(view))

    run_async(go)


@workflows.command("cancel")
@click.argument("workflow_id")
def cancel(workflow_id: str) -> None:
    """Cancel every node not ended (running ones through their workers). Exits 3 when
    unknown."""

    async def go() -> None:
        async with open_client() as client:
            view = await client.cancel_workflow(_known(workflow_id))
        click.echo(_summary(view))

    run_async(go)


@workflows.command("retry")
@click.argument("workflow_id")
@click.option("--mode", type=click.Choice(RETRY_MODES), default="failed_only", show_default=True,
              help="failed_only: failed, cancelled and dep_failed nodes; "
                   "failed_and_downstream: those and every node after them; all: every node.")
def retry(workflow_id: str, mode: str) -> None:
    """Run nodes of an ended workflow again (each under a new epoch). Exits 1 while it runs
    or cancels, 3 when unknown."""

    async def go() -> None:
        async with open_client() as client:
            view = await client.retry_workflow(_known(workflow_id), mode)
        click.echo(_summary(view))

    run_async(go)


@workflows.command("check")
@click.argument("workflow_id")
def check(workflow_id: str) -> None:
    """Recompute every counter from the node states and report mismatches (exit 1 if any)."""

    async def go() -> None:
        async with open_client() as client:
            problems = await client.workflows.check(_known(workflow_id))
        for problem in problems:
            click.echo(f"{workflow_id}\t{problem}")
        if problems:
            fail(f"{len(problems)} mismatch(es) in workflow {workflow_id}", EXIT_ERROR)
        click.echo(f"{workflow_id}\tok")

    run_async(go)
