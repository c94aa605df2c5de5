"""The scheduling core: schedule specs, bucket maths and the missed-bucket rule
(docs/architecture.md, "Scheduling").

Shared unchanged by ``jobq scheduler`` and the operator, so it does no I/O of its own: ``fire``
calls the ``enqueue`` it is given (``Client.enqueue``). Every firing is keyed by its bucket,
``schedule:<namespace>/<name>:<bucket start>``, so any number of replicas or restarts yield
one job per bucket while the key's record lives (7 days); past that the callers' memory of the
last bucket fired (``status.lastBucket``, ``jobq.schedule_mark``) passed as ``last_bucket``
keeps a long bucket from firing twice. Only the most recent bucket is ever a candidate
(Kubernetes CronJob semantics: no catch-up storm).

Cron expressions are evaluated by cronsim: it is maintained (by the healthchecks.io author, who
runs it on millions of checks), pure Python with no dependencies, typed, iterates forwards and
backwards, and is DST-correct in the Debian cron way: a fixed-time job whose local time does not
exist (spring forward) runs at the first minute after the gap, and one whose local time happens
twice (fall back) runs once; interval jobs (``*/15 * * * *``) follow real elapsed time. croniter,
the usual alternative, was unmaintained for a time and its DST handling has open bugs. Time zones
come from ``zoneinfo`` (with the ``tzdata`` package as a fallback where the OS has no zone files).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobq.errors import ConfigError
from jobq.jobs import Backoff
from jobq.workflows.graph import WorkflowInvalid
from jobq.workflows.model import Node
from jobq.workflows.spec import WorkflowSpec

# Cron macros Kubernetes CronJob accepts, as 5-field expressions.
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# Kubernetes object names (DNS-1123 subdomains): a '/' or ':' in them could make two schedules'
# idempotency keys collide.
_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_ITERATION_LIMIT = 10_000  # a bound on cron stepping; real expressions need a handful


class ScheduleError(ConfigError):
    """A schedule that cannot run; ``reason`` is a short machine word (a Kubernetes reason)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ScheduleOptions(BaseModel):
    """Job options of every firing; unset ones fall back to the task's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int | None = Field(None, ge=1, le=100)
    backoff: Backoff | None = None


class ScheduleSpec(BaseModel):
    """One schedule: the JobSchedule spec fields plus its name and namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=253, pattern=_NAME)
    namespace: str = Field("default", max_length=253, pattern=_NAME)
    type: str | None = Field(None, min_length=1)
    """The task type of the job each firing enqueues; or else ``workflow``."""
    payload: dict[str, Any] = {}
    options: ScheduleOptions = ScheduleOptions()
    workflow: WorkflowSpec | None = None
    """A workflow each firing creates (R24), keyed like a job: one per bucket."""
    every: str | None = None
    """An interval (``30s``, ``5m``, ``1h``, ``1h30m``, ``1d``); buckets align to the epoch."""
    schedule: str | None = None
    """A 5-field cron expression (or ``@hourly``-style macro), read in ``timeZone``."""
    timeZone: str = "UTC"
    suspend: bool = False
    startingDeadlineSeconds: int | None = Field(None, ge=0)
    """A bucket later than this many seconds past its start is skipped, not enqueued."""


@dataclass(frozen=True, slots=True)
class FireResult:
    """What one firing enqueued (or found already enqueued, ``duplicate``). A workflow's
    firing has its workflow id as ``job_id`` and ``workflow_id``, and no queue."""

    bucket: datetime
    key: str
    job_id: str
    queue: str
    duplicate: bool
    workflow_id: str | None = None


class Enqueued(Protocol):
    """What ``enqueue`` answers; ``jobq.client.EnqueueResult`` is one."""

    @property
    def job_id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def duplicate(self) -> bool: ...


class Enqueue(Protocol):
    """The producer ``fire`` calls: ``Client.enqueue`` has this shape."""

    def __call__(
        self,
        type: str,
        idempotency_key: str,
        payload: dict[str, Any],
        *,
        attempts: int | None = ...,
        backoff: Backoff | None = ...,
    ) -> Awaitable[Enqueued]: ...


class Created(Protocol):
    """What ``create_workflow`` answers; ``jobq.workflows.WorkflowCreated`` is one."""

    @property
    def workflow_id(self) -> str: ...
    @property
    def duplicate(self) -> bool: ...


class CreateWorkflow(Protocol):
    """The producer of a workflow schedule: ``Client.create_workflow`` has this shape."""

    def __call__(
        self, idempotency_key: str, spec: list[Node], *, fail_fast: bool = ...,
    ) -> Awaitable[Created]: ...


def parse(data: Mapping[str, Any]) -> ScheduleSpec:
    """Build and validate a spec from plain data (a YAML entry, a custom resource)."""
    try:
        spec = ScheduleSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'spec'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ScheduleError("InvalidSpec", problems) from None
    validate(spec)
    return spec


def validate(spec: ScheduleSpec) -> None:
    """Raise ScheduleError unless the schedule can run: one trigger, a known zone, valid syntax."""
    if (spec.every is None) == (spec.schedule is None):
        raise ScheduleError("InvalidTrigger", "set exactly one of 'every' and 'schedule'")
    if (spec.type is None) == (spec.workflow is None):
        raise ScheduleError("InvalidTarget", "set exactly one of 'type' and 'workflow'")
    if spec.workflow is not None:
        workflow_nodes(spec)
    _zone(spec.timeZone)
    if spec.every is not None:
        _every_s(spec.every)
    else:
        assert spec.schedule is not None
        _cron(spec.schedule)


def bucket_idempotency_key(spec: ScheduleSpec, bucket: datetime) -> str:
    """``schedule:<namespace>/<name>:<bucket start, ISO 8601 UTC>``: one job per bucket."""
    return f"schedule:{spec.namespace}/{spec.name}:{isoformat(bucket)}"


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bucket_start(spec: ScheduleSpec, now: datetime) -> datetime | None:
    """Start (UTC) of the most recent bucket at or before ``now``; None if there never was one."""
    now = _utc(now)
    if spec.every is not None:
        every = _every_s(spec.every)
        seconds = math.floor(now.timestamp())
        return datetime.fromtimestamp(seconds - seconds % every, UTC)
    expr, zone = _cron(spec.schedule or ""), _zone(spec.timeZone)
    # Reverse from the whole second after now (cronsim steps one second before matching), then
    # walk forwards: around a fall-back hour the reverse and forward walks can disagree on which
    # occurrence of a repeated wall time fired, and forward order is the one next_fire uses.
    start = (now.replace(microsecond=0) + timedelta(seconds=1)).astimezone(zone)
    found: datetime | None = None
    for n, moment in enumerate(CronSim(expr, start, reverse=True)):
        if n > _ITERATION_LIMIT:
            return None
        if moment.astimezone(UTC) <= now:
            found = moment.astimezone(UTC)
            break
    if found is None:
        return None
    for n, moment in enumerate(CronSim(expr, found.astimezone(zone))):
        at = moment.astimezone(UTC)
        if at > now or n > _ITERATION_LIMIT:
            break
        found = max(found, at)
    return found


def next_fire(spec: ScheduleSpec, now: datetime) -> datetime | None:
    """The first bucket start (UTC) strictly after ``now``; None if the cron never fires again."""
    now = _utc(now)
    if spec.every is not None:
        every = _every_s(spec.every)
        seconds = math.floor(now.timestamp())
        return datetime.fromtimestamp(seconds - seconds % every + every, UTC)
    expr, zone = _cron(spec.schedule or ""), _zone(spec.timeZone)
    for n, moment in enumerate(CronSim(expr, now.astimezone(zone))):
        if n > _ITERATION_LIMIT:
            break
        at = moment.astimezone(UTC)
        if at > now:  # a repeated fall-back hour can step back to an earlier instant
            return at
    return None


def due_bucket(
    spec: ScheduleSpec, now: datetime, last_bucket: datetime | None = None
) -> datetime | None:
    """The bucket to enqueue now, if any: only the most recent one, never one at or before
    ``last_bucket``, and (with ``startingDeadlineSeconds``) only while it is that fresh.

    A caller without memory passes no ``last_bucket`` and relies on the idempotency key; one
    that knows when the schedule was created (the operator) passes the bucket in progress at
    creation, so a new schedule waits for its first full bucket, as a Kubernetes CronJob does.
    """
    if spec.suspend:
        return None
    now = _utc(now)
    bucket = bucket_start(spec, now)
    if bucket is None or (last_bucket is not None and bucket <= _utc(last_bucket)):
        return None
    deadline = spec.startingDeadlineSeconds
    if deadline is not None and (now - bucket).total_seconds() > deadline:
        return None
    return bucket


def workflow_nodes(spec: ScheduleSpec) -> list[Node]:
    """The nodes of a workflow schedule; ScheduleError for a graph that cannot run."""
    assert spec.workflow is not None
    try:
        nodes: list[Node] = spec.workflow.to_nodes()
    except WorkflowInvalid as exc:
        raise ScheduleError("InvalidWorkflow", f"workflow: {exc}") from None
    return nodes


async def fire(
    spec: ScheduleSpec, now: datetime, enqueue: Enqueue, last_bucket: datetime | None = None,
    create_workflow: CreateWorkflow | None = None,
) -> FireResult | None:
    """Enqueue the due bucket's job through ``enqueue``, or create its workflow through
    ``create_workflow`` (both idempotent by the bucket's key: a firing retried after a crash
    makes the same job or workflow, not a second); None when nothing is due."""
    bucket = due_bucket(spec, now, last_bucket)
    if bucket is None:
        return None
    key = bucket_idempotency_key(spec, bucket)
    if spec.workflow is not None:
        if create_workflow is None:
            raise TypeError("a workflow schedule needs create_workflow")
        created = await create_workflow(key, workflow_nodes(spec),
                                        fail_fast=spec.workflow.failFast)
        return FireResult(bucket, key, created.workflow_id, "", created.duplicate,
                          created.workflow_id)
    assert spec.type is not None
    result = await enqueue(
        spec.type, key, dict(spec.payload),
        attempts=spec.options.attempts, backoff=spec.options.backoff,
    )
    return FireResult(bucket, key, result.job_id, result.queue, result.duplicate)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    return moment.astimezone(UTC)


@lru_cache(maxsize=256)
def _every_s(text: str) -> int:
    match = _EVERY.match(text.strip())
    if not text.strip() or match is None:
        raise ScheduleError(
            "InvalidEvery", f"every {text!r}: expected a duration like 30s, 5m, 1h or 1h30m"
        )
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 1:
        raise ScheduleError("InvalidEvery", f"every {text!r}: must be at least 1s")
    return total


@lru_cache(maxsize=256)
def _cron(text: str) -> str:
    expr = CRON_MACROS.get(text.strip().lower(), text.strip())
    if len(expr.split()) != 5:
        raise ScheduleError(
            "InvalidCron", f"schedule {text!r}: expected 5 fields (minute hour day month weekday)"
        )
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise ScheduleError("InvalidCron", f"schedule {text!r}: {exc}") from None
    return expr


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError("UnknownTimeZone", f"timeZone {name!r} is not an IANA zone") from None


__all__ = [
    "CreateWorkflow",
    "Enqueue",
    "FireResult",
    "ScheduleError",
    "ScheduleOptions",
    "ScheduleSpec",
    "bucket_idempotency_key",
    "bucket_start",
    "due_bucket",
    "fire",
    "next_fire",
    "parse",
    "validate",
    "workflow_nodes",
]
