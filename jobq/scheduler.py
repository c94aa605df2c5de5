"""``jobq scheduler``: the standalone scheduler (docs/architecture.md, "Scheduling").

Each firing goes through ``Client.enqueue`` with the bucket's idempotency key, so two schedulers
at once, or one restarted mid-bucket, make one job per bucket while the key's record lives (7
days). Longer buckets (``@monthly``, ``every: 30d``) need memory past that: after each enqueue the
schedule's mark in Redis (``jobq.schedule_mark``) is raised to the bucket, and a scheduler,
restarted or new, never fires a bucket at or before the mark. Each schedule runs in its own task
that sleeps until its next fire time; a Redis outage is logged and retried with backoff,
re-reading the clock (and the mark) on every try so that after a long outage only the latest
bucket (within its starting deadline) is enqueued.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from jobq.client import Client
from jobq.connection import REDIS_DOWN, connect, retrying
from jobq.errors import ConfigError, IdempotencyConflict
from jobq.logs import get_logger
from jobq.schedule import (
    FireResult,
    ScheduleError,
    ScheduleSpec,
    bucket_start,
    due_bucket,
    fire,
    isoformat,
    next_fire,
)
from jobq.schedule_check import check, schedule_queue
from jobq.schedule_mark import ScheduleMark
from jobq.settings import Settings
from jobq.shutdown import settle, stop_tasks, wait_event
from jobq.tasks import Registry

MAX_SLEEP_S = 60.0  # re-read the wall clock at least this often (clock steps, host suspend)
RETRY_MAX_WAIT_S = 30.0  # longest pause between enqueue attempts while Redis is away
STOP_WAIT_S = 2.0  # on SIGTERM, the schedule loops get this long to end, then are cancelled

Clock = Callable[[], datetime]

log = get_logger("jobq.scheduler")


def utcnow() -> datetime:
    return datetime.now(UTC)


def read_file(path: Path) -> list[Any]:
    """The schedule entries of a YAML file: a list, or a mapping with a ``schedules`` list."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read schedule file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"schedule file {path} is not valid YAML{at}") from None
    if isinstance(data, dict) and set(data) == {"schedules"}:
        data = data["schedules"]
    if not isinstance(data, list):
        raise ConfigError(
            f"schedule file {path}: expected a list of schedules or {{schedules: [...]}}"
        )
    return data


def load_schedules(path: Path, registry: Registry) -> list[ScheduleSpec]:
    """The valid schedules of ``path``; each bad one is logged and skipped. A file that cannot be
    read, or holds no valid schedule at all, is a ConfigError."""
    entries = read_file(path)
    specs: list[ScheduleSpec] = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        label = entry.get("name") if isinstance(entry, dict) else None
        try:
            spec = check(entry, registry)
            if (spec.namespace, spec.name) in seen:
                raise ScheduleError("DuplicateName", f"schedule name {spec.name!r} is used twice")
        except ScheduleError as exc:
            log.error("schedule.invalid", file=str(path), index=index, name=label,
                      reason=exc.reason, error=exc.message)
            continue
        seen.add((spec.namespace, spec.name))
        specs.append(spec)
    if not specs:
        raise ConfigError(f"schedule file {path}: no valid schedule"
                          + (f" (all {len(entries)} invalid, see log)" if entries else ""))
    return specs


async def run_scheduler(
    settings: Settings, registry: Registry, specs: list[ScheduleSpec], clock: Clock = utcnow
) -> int:
    """Fire ``specs`` until SIGTERM or SIGINT; returns the exit code."""
    redis = connect(settings.redis_url)
    client = Client(redis, registry, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runners = [
        asyncio.create_task(run_schedule(spec, client, clock, stop), name=f"schedule:{spec.name}")
        for spec in specs
    ]
    log.info("scheduler.started", schedules=[s.name for s in specs])
    await stop.wait()
    # The loops end on the flag (a cancellation can be lost inside redis-py on Python 3.11,
    # see jobq.shutdown); cancelling is the second means, and every wait here is bounded.
    if slow := await settle(runners, STOP_WAIT_S):
        log.warning("scheduler.stop_slow", tasks=sorted(slow))
        if left := await stop_tasks(runners, STOP_WAIT_S):
            log.warning("scheduler.tasks_left_running", tasks=sorted(left))
    await settle([asyncio.create_task(redis.aclose())], STOP_WAIT_S)
    log.info("scheduler.stopped")
    return 0


async def run_schedule(
    spec: ScheduleSpec, client: Client, clock: Clock = utcnow, stop: asyncio.Event | None = None
) -> None:
    """Fire one schedule at each bucket start until ``stop`` is set."""
    fields = {"name": spec.name, "namespace": spec.namespace,
              "type": spec.type or "workflow"}
    if spec.suspend:
        log.info("schedule.suspended", **fields)
        return
    stop = stop or asyncio.Event()
    mark = ScheduleMark(client.redis, client.keys(schedule_queue(spec, client.registry)), spec)
    last: datetime | None = None  # the newest bucket already handled by this process
    while not stop.is_set():
        now = clock()
        bucket = bucket_start(spec, now)
        if bucket is not None and (last is None or bucket > last):
            if due_bucket(spec, now, last) is None:
                log.info("schedule.missed", bucket=isoformat(bucket),
                         lateS=round((now - bucket).total_seconds(), 3), **fields)
                last = bucket
            else:
                try:
                    result = await _fire(spec, client, clock, last, mark, stop)
                except IdempotencyConflict as exc:
                    # The schedule changed mid-bucket; that bucket already has its job.
                    log.warning("schedule.conflict", bucket=isoformat(bucket), error=str(exc),
                                **fields)
                    last = bucket
                except Exception as exc:  # never crash the loop; try again next bucket
                    if stop.is_set():
                        return  # stopped while retrying through an outage
                    log.exception("schedule.error", bucket=isoformat(bucket), error=str(exc),
                                  **fields)
                    last = bucket
                else:
                    if result is not None:
                        target = ({"workflowId": result.workflow_id} if result.workflow_id
                                  else {"jobId": result.job_id, "queue": result.queue})
                        log.info("schedule.fired", bucket=isoformat(result.bucket),
                                 duplicate=result.duplicate, **target, **fields)
                        last = result.bucket
                    else:
                        last = bucket
        upcoming = next_fire(spec, clock())
        if upcoming is None:
            log.info("schedule.exhausted", **fields)
            return
        wait_s = (upcoming - clock()).total_seconds()
        await wait_event(stop, min(max(wait_s, 0.0), MAX_SLEEP_S))


async def _fire(
    spec: ScheduleSpec, client: Client, clock: Clock, last: datetime | None, mark: ScheduleMark,
    stop: asyncio.Event,
) -> FireResult | None:
    """``_fire_once`` retried while Redis is away (until ``stop``), re-reading the clock."""
    async for attempt in retrying(max_wait_s=RETRY_MAX_WAIT_S, until=stop):
        with attempt:
            try:
                return await _fire_once(spec, client, clock(), last, mark)
            except REDIS_DOWN as exc:
                log.warning("schedule.redis_unavailable", name=spec.name,
                            namespace=spec.namespace, error=str(exc))
                raise
    return None


async def _fire_once(
    spec: ScheduleSpec, client: Client, now: datetime, last: datetime | None, mark: ScheduleMark
) -> FireResult | None:
    """Fire the due bucket unless the mark says it was enqueued already (by this process before
    a restart, or by another replica), then raise the mark to it."""
    marked = await mark.read()
    if marked is not None and (last is None or marked > last):
        current = bucket_start(spec, now)
        if current is not None and current <= marked:
            log.info("schedule.already_fired", bucket=isoformat(current),
                     marked=isoformat(marked), name=spec.name, namespace=spec.namespace)
        last = marked
    bucket = due_bucket(spec, now, last)
    try:
        with client.root_span(f"fire {spec.name}", **{"jobq.schedule": spec.name}):
            result = await fire(spec, now, client.enqueue, last, client.create_workflow)
    except IdempotencyConflict:
        if bucket is not None:  # the bucket has its job (from an older definition)
            await mark.raise_to(bucket, now)
        raise
    if result is not None:
        await mark.raise_to(result.bucket, now)
    return result
