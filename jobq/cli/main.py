"""``jobq`` subcommands. Bad input ends in one line on stderr and a non-zero exit, never a
traceback; ``--json`` prints exactly what the HTTP API returns for the same thing."""

from __future__ import annotations

import errno
import importlib
import math
import os
import sys
from typing import Any

import click
import orjson

from jobq import keys, logs
from jobq.cli import admin_cmd
from jobq.cli.common import (
    EXIT_STILL_RUNNING,
    EXIT_USAGE,
    describe,
    fail,
    open_client,
    port_taken,
    require_free_port,
    run_async,
    settings_and_registry,
)
from jobq.errors import JobqError
from jobq.jobs import Backoff, status_of
from jobq.loop import run
from jobq.watch import JobWatch

# Subcommands in modules of their own, imported only when run (or listed by --help), so that
# `jobq worker` never pays for the API's, the operator's or dev's imports.
LAZY_COMMANDS = {
    "api": "jobq.cli.api_cmd:api",
    "completion": "jobq.cli.completion_cmd:completion",
    "config": "jobq.cli.config_cmd:config",
    "dev": "jobq.cli.dev:dev",
    "operator": "jobq.cli.operator_cmd:operator",
    "outbox": "jobq.cli.outbox_cmd:outbox",
    "scheduler": "jobq.cli.scheduler_cmd:scheduler",
    "workflows": "jobq.cli.workflows_cmd:workflows",
}


class LazyGroup(click.Group):
    """A click group whose ``LAZY_COMMANDS`` are imported on first use (click's documented
    lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, name = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command

METRICS_HOST = "0.0.0.0"  # where jobq.health serves a worker's /metrics and /healthz


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobq")
def cli() -> None:
    """jobq: background jobs on Redis with retries, a DLQ, replay, schedules and autoscaling.

    Every command finds Redis through REDIS_URL; other settings are JOBQ_* variables
    (see .env.example).
    """


@cli.command()
@click.option("--queue", "queues", multiple=True, required=True, metavar="NAME[:CONCURRENCY]",
              help="Queue to work on, with how many jobs run at once (default 1). Repeatable.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9101, show_default=True,
              help="Port of /metrics and /healthz (0 = any free port, logged at start).")
@click.option("--executor", type=click.Choice(["thread", "process"]), default=None,
              help="Where handlers of tasks that do not choose run: in the worker (thread) or "
              "in child processes (process) [env JOBQ_EXECUTOR, default thread].")
@click.option("--children", type=click.IntRange(0, 1024), default=None,
              help="Child processes per queue for the process executor (0 = the queue's "
              "concurrency) [JOBQ_CHILDREN].")
@click.option("--max-jobs", type=click.IntRange(0), default=None,
              help="Recycle the worker after this many jobs: stop claiming, finish or hand "
              "back, exit 0 (0 = never) [JOBQ_MAX_JOBS].")
@click.option("--max-rss-mb", type=click.IntRange(0), default=None,
              help="Recycle the worker once its memory (RSS) passes this (0 = never) "
              "[JOBQ_MAX_RSS_MB].")
def worker(queues: tuple[str, ...], metrics_port: int, executor: str | None,
           children: int | None, max_jobs: int | None, max_rss_mb: int | None) -> None:
    """Run jobs of one or more queues until SIGTERM, then shut down gracefully."""
    from jobq.tracing import setup
    from jobq.worker.main import parse_queue, run_worker

    settings, registry = settings_and_registry()
    given = {"executor": executor, "children": children, "max_jobs": max_jobs,
             "max_rss_mb": max_rss_mb}
    settings = settings.model_copy(update={k: v for k, v in given.items() if v is not None})
    specs = [parse_queue(q) for q in queues]
    what = "the worker's metrics"
    require_free_port(metrics_port, what, "--metrics-port", host=METRICS_HOST)
    provider = setup.provider_from_env("jobq-worker")  # OTEL_EXPORTER_OTLP_ENDPOINT set: traced
    try:
        code = run(run_worker(settings, registry, specs, metrics_port,
                              tracer_provider=provider))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # taken between the check and the bind
            raise port_taken(metrics_port, what, "--metrics-port") from None
        raise
    # Jobs still running in threads were handed back already (R9); exiting normally would
    # wait for those threads (sync handlers cannot be cancelled), so leave at once, after
    # writing the buffered log lines (os._exit skips atexit). run_worker flushed the spans.
    setup.shutdown(provider)
    logs.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@cli.command()
@click.argument("task_type", metavar="TYPE")
@click.option("--key", "idempotency_key", required=True,
              help="Idempotency key: the same key always yields the same job.")
@click.option("--payload", default="{}", show_default=True, help="Payload as a JSON object.")
@click.option("--attempts", type=click.IntRange(1, 100), help="Attempts before the DLQ.")
@click.option("--backoff", "backoff_s", type=click.FloatRange(0, 86400),
              help="Fixed delay between attempts, in seconds.")
@click.option("--exponential", is_flag=True, help="Exponential backoff (with jitter) instead.")
@click.option("--delay", "delay_s", type=click.FloatRange(0, 365 * 86400), default=0.0,
              help="Seconds before the job becomes ready.")
@click.option("--priority", type=click.IntRange(keys.PRIORITY_MIN, keys.PRIORITY_MAX),
              help=f"{keys.PRIORITY_MIN}-{keys.PRIORITY_MAX}, higher runs first (task default).")
@click.option("--json", "as_json", is_flag=True, help="Print the POST /jobs response body.")
def enqueue(task_type: str, idempotency_key: str, payload: str, attempts: int | None,
            backoff_s: float | None, exponential: bool, delay_s: float, priority: int | None,
            as_json: bool) -> None:
    """Create a job without HTTP (the system producer); same idempotency as POST /jobs."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        fail(f"--payload is not valid JSON: {exc}", EXIT_USAGE)
    backoff = None
    if backoff_s is not None or exponential:
        backoff = Backoff(type="exponential" if exponential else "fixed",
                          delaySeconds=keys.BACKOFF_DELAY_S if backoff_s is None else backoff_s)

    async def go() -> None:
        async with open_client() as client:
            result = await client.enqueue(task_type, idempotency_key, body, attempts=attempts,
                                          backoff=backoff, delay_s=delay_s, priority=priority)
        if as_json:
            _print_json({"status": "accepted", "jobId": result.job_id,
                         "duplicate": result.duplicate})
        else:
            kind = "duplicate of existing job" if result.duplicate else "created"
            click.echo(f"{result.job_id}\t{kind}\t{result.queue}")

    run_async(go)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the GET /jobs/{id}/status body.")
@click.option("--full", is_flag=True, help="The full record (GET /jobs/{id}) instead.")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), is_flag=False, flag_value=math.inf,
              default=None, metavar="[SECONDS]",
              help="Wait until the job is completed, failed or cancelled (at most SECONDS if "
                   "given), then show it; blocks on the queue's event stream, no polling.")
def status(job_id: str, as_json: bool, full: bool, wait_s: float | None) -> None:
    """Show a job's state.

    Exits with 3 when no such job exists, and with 5 when it existed but its record was
    trimmed (finished jobs are kept by count and age) while its idempotency key is remembered.
    With --wait, exits with 6 when the wait ended before the job finished (it is shown as it is).
    """
    unfinished = False

    async def go() -> None:
        nonlocal unfinished
        async with open_client(tasks_required=False) as client:
            if wait_s is None:
                job = await client.get_job(job_id)
            else:
                watch = JobWatch(client)
                try:
                    job = await watch.wait(job_id, None if math.isinf(wait_s) else wait_s)
                finally:
                    await watch.close()
                unfinished = not job.terminal
        view = job if full else status_of(job)
        if as_json or full:
            _print_json(view.model_dump(mode="json"))
        else:
            for name, value in view.model_dump(mode="json").items():
                if isinstance(value, dict):  # progress: one line
                    value = " ".join(f"{k}={v}" for k, v in value.items() if v is not None)
                click.echo(f"{name:<13} {'-' if value is None else value}")

    run_async(go)
    if unfinished:
        sys.exit(EXIT_STILL_RUNNING)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the GET /queues body.")
def queues(as_json: bool) -> None:
    """Jobs per state in every queue."""

    async def go() -> None:
        async with open_client(tasks_required=False) as client:
            counts = await client.counts()
        if as_json:
            _print_json({"queues": [{"queue": q, **c} for q, c in counts.items()]})
            return
        states = ("waiting", "active", "delayed", "completed", "failed", "dlq")
        click.echo(f"{'QUEUE':<20}" + "".join(f"{s.upper():>11}" for s in states))
        for queue, c in counts.items():
            click.echo(f"{queue:<20}" + "".join(f"{c[s]:>11}" for s in states))

    run_async(go)


@cli.group()
def dlq() -> None:
    """Inspect and replay dead-lettered jobs."""


@dlq.command("list")
@click.option("--queue", help="Only this queue.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--cursor", help="nextCursor of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print the GET /dlq body.")
def dlq_list(queue: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """DLQ entries, newest first."""

    async def go() -> None:
        async with open_client(tasks_required=False) as client:
            page = await client.list_dlq(queue, limit, cursor)
        if as_json:
            _print_json(page.model_dump(mode="json"))
            return
        for e in page.items:
            click.echo(f"{e.dlqId}\t{e.failedAt}\t{e.type}\t{e.originalJobId}\t"
                       f"replays={len(e.replays)}\t{e.failedReason}")
        if page.nextCursor:
            click.echo(f"more: --cursor {page.nextCursor}", err=True)

    run_async(go)


@dlq.command("show")
@click.argument("dlq_id")
def dlq_show(dlq_id: str) -> None:
    """One DLQ entry with its replays (as JSON)."""

    async def go() -> None:
        async with open_client(tasks_required=False) as client:
            _print_json((await client.get_dlq_entry(dlq_id)).model_dump(mode="json"))

    run_async(go)


@dlq.command("replay")
@click.argument("dlq_id")
@click.option("--key", "idempotency_key", help="Makes a repeated replay return the same job.")
@click.option("--json", "as_json", is_flag=True, help="Print the replay response body.")
def dlq_replay(dlq_id: str, idempotency_key: str | None, as_json: bool) -> None:
    """Replay a DLQ entry as a new job; the entry stays as it is."""

    async def go() -> None:
        async with open_client() as client:
            r = await client.replay(dlq_id, idempotency_key)
        if as_json:
            _print_json({"status": "accepted", "jobId": r.job_id,
                         "replayedFromJobId": r.replayed_from_job_id, "dlqId": r.dlq_id})
        else:
            click.echo(f"{r.job_id}\treplay of {r.replayed_from_job_id}"
                       + ("\t(duplicate)" if r.duplicate else ""))

    run_async(go)


admin_cmd.register(cli, dlq)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except JobqError as exc:
        fail(describe(exc))


__all__ = ["cli", "main"]
