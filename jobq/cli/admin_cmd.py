"""Operator subcommands: pause/resume a queue, cancel a job, list a queue's jobs, the live
workers, a queue's throughput, bulk DLQ replay and discarding a DLQ entry. ``--json`` prints
what the HTTP API answers for the same request."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import get_args

import click
import orjson
from pydantic import BaseModel

from jobq import admin, keys
from jobq.bulk_replay import BulkReplayRequest, bulk_replay
from jobq.cli.common import open_client, run_async
from jobq.listing import ListState, list_jobs


def _who() -> str:
    """State changes are logged with who made them; from the CLI, the local user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers run as a bare uid)
        return "cli"


def _print_model(model: BaseModel) -> None:
    click.echo(orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


def _pause_command(paused: bool) -> click.Command:
    verb = "pause" if paused else "resume"

    @click.command(verb)
    @click.argument("queue")
    @click.option("--json", "as_json", is_flag=True,
                  help=f"Print the POST /queues/{{q}}/{verb} body.")
    def command(queue: str, as_json: bool) -> None:
        async def go() -> None:
            async with open_client() as client:
                result = await admin.set_paused(client, queue, paused, who=_who())
            _print_model(result) if as_json else click.echo(f"{queue}\t{verb}d")

        run_async(go)

    command.help = ("Pause a queue: workers start none of its jobs (it still accepts them)."
                    if paused else "Resume a paused queue.")
    return command


@click.command("cancel")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the POST /jobs/{id}/cancel body.")
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel a job: a waiting or delayed one never runs; a running one is cancelled by its
    worker within a fraction of a second. Exits 1 when it has finished already, 3 when
    unknown."""

    async def go() -> None:
        async with open_client() as client:
            result = await admin.cancel_job(client, job_id, who=_who())
        if as_json:
            _print_model(result)
        else:
            click.echo(f"{job_id}\t" + ("cancelled" if result.state == "cancelled"
                                        else "running: cancel requested"))

    run_async(go)


@click.command("jobs")
@click.argument("queue")
@click.option("--state", type=click.Choice(get_args(ListState)), default="waiting",
              show_default=True)
@click.option("--limit", type=click.IntRange(1, keys.JOBS_PAGE_MAX), default=20,
              show_default=True)
@click.option("--cursor", help="nextCursor of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print the GET /queues/{q}/jobs body.")
def jobs(queue: str, state: ListState, limit: int, cursor: str | None, as_json: bool) -> None:
    """A page of a queue's jobs in one state (waiting in queue order, finished newest first)."""

    async def go() -> None:
        async with open_client() as client:
            page = await list_jobs(client, await admin.known_queue(client, queue), state, limit,
                                   cursor)
        if as_json:
            _print_model(page)
            return
        for j in page.items:
            click.echo(f"{j.jobId}\t{j.type}\t{j.state.value}\tattempts={j.attempts}\t"
                       f"{j.createdAt}\t{j.failedReason or ''}")
        if page.nextCursor:
            click.echo(f"more: --cursor {page.nextCursor}", err=True)

    run_async(go)


@click.command("workers")
@click.option("--json", "as_json", is_flag=True, help="Print the GET /workers body.")
def workers(as_json: bool) -> None:
    """The live workers from their heartbeats (stale ones marked)."""

    async def go() -> None:
        async with open_client() as client:
            found = await admin.list_workers(client)
        if as_json:
            _print_model(found)
            return
        for w in found.workers:
            queues = ",".join(f"{q.queue}:{q.inFlight}/{q.concurrency}" for q in w.queues)
            click.echo(f"{w.workerId}\t{w.pod}\t{queues}\t{w.lastSeen}"
                       + ("\tSTALE" if w.stale else ""))

    run_async(go)


@click.command("throughput")
@click.argument("queue")
@click.option("--json", "as_json", is_flag=True, help="Print the GET /queues/{q}/throughput body.")
def throughput(queue: str, as_json: bool) -> None:
    """Jobs completed and dead-lettered per minute over the last hour."""

    async def go() -> None:
        async with open_client() as client:
            series = await admin.throughput(client, queue)
        if as_json:
            _print_model(series)
            return
        for m in series.minutes:
            if m.completed or m.failed:
                click.echo(f"{m.minute}\tcompleted={m.completed}\tfailed={m.failed}")

    run_async(go)


@click.command("replay-many")
@click.option("--id", "ids", multiple=True, help="A DLQ id (repeatable); the filters are ignored.")
@click.option("--queue", help="Only entries of this queue.")
@click.option("--type", "task_type", help="Only entries of this task type.")
@click.option("--failed-after", type=click.DateTime(),
              help="Only entries failed at or after (UTC).")
@click.option("--failed-before", type=click.DateTime(), help="Only entries failed before (UTC).")
@click.option("--reason", help="Only entries whose failure reason contains this.")
@click.option("--dry-run", is_flag=True, help="Only count the matching entries.")
@click.option("--key", "idempotency_key", help="Repeating with this key replays nothing twice.")
@click.option("--json", "as_json", is_flag=True, help="Print the POST /dlq/replay body.")
def replay_many(ids: tuple[str, ...], queue: str | None, task_type: str | None,
                failed_after: datetime | None, failed_before: datetime | None,
                reason: str | None, dry_run: bool, idempotency_key: str | None,
                as_json: bool) -> None:
    """Replay every DLQ entry matching the filters (or the ids given)."""
    request = BulkReplayRequest(
        ids=list(ids) or None, queue=queue, type=task_type, reasonContains=reason,
        failedAfter=failed_after.replace(tzinfo=UTC) if failed_after else None,
        failedBefore=failed_before.replace(tzinfo=UTC) if failed_before else None,
        dryRun=dry_run, idempotencyKey=idempotency_key)

    async def go() -> None:
        async with open_client() as client:
            result = await bulk_replay(client, request, who=_who())
        if as_json:
            _print_model(result)
            return
        for item in result.replayed:
            click.echo(f"{item.dlqId}\t{item.jobId}" + ("\t(duplicate)" if item.duplicate else ""))
        click.echo(f"matched {result.matched}" + (" (dry run)" if result.dryRun else "")
                   + (" (truncated)" if result.truncated else ""), err=True)

    run_async(go)


@click.command("discard")
@click.argument("dlq_id")
def discard(dlq_id: str) -> None:
    """Delete a DLQ entry on purpose (logged); it can no longer be replayed."""

    async def go() -> None:
        async with open_client() as client:
            await admin.discard_dlq_entry(client, dlq_id, who=_who())
        click.echo(f"{dlq_id}\tdiscarded")

    run_async(go)


def register(cli: click.Group, dlq: click.Group) -> None:
    """Add these commands to ``jobq`` and its ``dlq`` group."""
    for command in (_pause_command(True), _pause_command(False), cancel, jobs, workers,
                    throughput):
        cli.add_command(command)
    dlq.add_command(replay_many)
    dlq.add_command(discard)
