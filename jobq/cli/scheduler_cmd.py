"""``jobq scheduler``: the standalone scheduler, from a YAML file of schedules."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from jobq.cli.common import settings_and_registry


@click.command()
@click.option("--file", "path", required=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file: a list of schedules, or {schedules: [...]}.")
def scheduler(path: Path) -> None:
    """Enqueue scheduled jobs, one per time bucket, until SIGTERM or Ctrl-C.

    Stateless: any number of schedulers may run at once, and a restart never doubles a bucket.
    Each schedule has name, type, payload, options (attempts, backoff), either every (30s, 5m,
    1h30m) or schedule (5-field cron) with timeZone, suspend and startingDeadlineSeconds.
    Instead of type and payload, workflow: {nodes: [...], failFast} creates one workflow per
    bucket (nodes as in POST /workflows). A bad schedule is logged and skipped; the others run.
    """
    from jobq.scheduler import load_schedules, run_scheduler

    settings, registry = settings_and_registry()
    specs = load_schedules(path, registry)
    from jobq.tracing import setup

    provider = setup.provider_from_env("jobq-scheduler")  # global: the scheduler's client uses it
    code = asyncio.run(run_scheduler(settings, registry, specs))
    setup.shutdown(provider)
    sys.exit(code)
