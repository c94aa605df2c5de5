"""``jobq outbox relay``: moves committed outbox rows into jobq (jobq.contrib.outbox). Its
dependencies (psycopg) are the ``outbox`` extra, imported only when the command runs, so a
missing one is a one-line error naming the extra."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from jobq.cli.common import EXIT_USAGE, fail, require_free_port, settings_and_registry

METRICS_HOST = "0.0.0.0"  # as a worker's /metrics
MISSING = ("the outbox relay needs {name}: pip install 'jobq[outbox]' "
           "(or 'jobq[django]' in a Django project)")


@click.group()
def outbox() -> None:
    """The transactional outbox: jobs written in your database's transaction."""


@outbox.command()
@click.option("--dsn", required=True, envvar="JOBQ_OUTBOX_DSN", metavar="DSN",
              help="PostgreSQL connection string, e.g. postgresql://app@db/app (or "
                   "$JOBQ_OUTBOX_DSN).")
@click.option("--table", default="jobq_outbox", show_default=True, metavar="[SCHEMA.]NAME",
              help="The outbox table.")
@click.option("--source", default="outbox", show_default=True,
              help="First part of each row's idempotency key (<source>:<row id>); give each "
                   "database whose outbox feeds the same Redis its own, and never change it.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Rows moved per PostgreSQL transaction.")
@click.option("--poll-s", type=click.FloatRange(0.005, 60), default=0.1, show_default=True,
              help="Seconds to wait when the outbox held less than a batch.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9102, show_default=True,
              help="Port of /metrics and /healthz (0 = any free port, logged at start).")
@click.option("--until-empty", is_flag=True,
              help="Exit once no row is left to move (a one-off drain, e.g. from cron).")
def relay(dsn: str, table: str, source: str, batch: int, poll_s: float, metrics_port: int,
          until_empty: bool) -> None:
    """Move committed outbox rows into jobq until SIGTERM or Ctrl-C.

    Any number of relays may run against one table (rows are taken with FOR UPDATE SKIP
    LOCKED); a relay killed mid-batch loses nothing and makes no duplicate job, because each
    row's idempotency key is its id. Needs JOBQ_TASKS, as the API does, to validate rows.
    """
    try:
        import psycopg

        from jobq.contrib.outbox.serve import run_relay
    except ModuleNotFoundError as exc:
        fail(MISSING.format(name=exc.name or "psycopg"), EXIT_USAGE)
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = " ".join(str(exc).split())  # libpq's message ends in a newline
        fail(f"--dsn is not a PostgreSQL connection string: {reason}", EXIT_USAGE)
    require_free_port(metrics_port, "the relay's /metrics", "--metrics-port", host=METRICS_HOST)
    settings, registry = settings_and_registry()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.exit(run_relay(lambda: psycopg.connect(dsn), settings, registry, stop, table=table,
                       source=source, batch=batch, poll_s=poll_s, metrics_port=metrics_port,
                       metrics_host=METRICS_HOST, until_empty=until_empty))
