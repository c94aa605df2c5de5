"""JobSchedule reconciling: one loop per object that sleeps until its next bucket and fires it
through the shared scheduling core (jobq.schedule) with ``Client.enqueue``.

Nothing here is needed for correctness across processes: every firing is keyed by its bucket
(``schedule:<namespace>/<name>:<bucket start>``), so an operator restarted mid-bucket, or a
second one acting at the same time, finds the bucket's job already there (``duplicate``).
``status.lastBucket`` only saves the Redis round trip.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from jobq import keys
from jobq.connection import REDIS_DOWN
from jobq.errors import IdempotencyConflict
from jobq.logs import get_logger
from jobq.operator.context import LoopSignals, OperatorContext
from jobq.operator.kube import as_body
from jobq.operator.status import find_condition, ready_condition, status_patch
from jobq.schedule import (
    FireResult,
    ScheduleError,
    ScheduleSpec,
    bucket_idempotency_key,
    bucket_start,
    due_bucket,
    fire,
    isoformat,
    next_fire,
)
from jobq.schedule_check import check
from jobq.workflows.keys import workflow_id_for

MAX_SLEEP_S = 60.0  # re-read the object and the clock at least this often
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # after failed reconciles (Redis or the API away)
ACTIVE_CHECK_S = 1.0  # longest wait for the peering before the stop flag is checked again
WAKE_MARGIN_S = 0.005  # sleep a hair past the bucket start so the clock is surely in it

log = get_logger("jobq.operator.schedules")


def describe(spec: ScheduleSpec) -> str:
    if spec.every is not None:
        return f"fires every {spec.every}"
    return f"fires on {spec.schedule!r} ({spec.timeZone})"


def _moment(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def floor_bucket(
    spec: ScheduleSpec, created: datetime | None, last: datetime | None
) -> datetime | None:
    """The newest bucket that must not fire: the last one fired, or the one in progress when the
    schedule was created (a new schedule waits for its first full bucket, like a CronJob)."""
    candidates = [b for b in (last, bucket_start(spec, created) if created else None) if b]
    return max(candidates) if candidates else None


def needs_reconcile(body: Any) -> bool:
    """A watch event worth waking the loop for: the spec changed since the status was written."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return bool(meta.get("generation") != status.get("observedGeneration"))


async def run_schedule(
    ctx: OperatorContext, namespace: str, name: str, signals: LoopSignals
) -> None:
    """Reconcile one JobSchedule until it is deleted or the loop is asked to stop (checked
    every turn; every wait is bounded)."""
    failures = 0
    while not signals.stopping:
        if not await ctx.peering.wait_active(ACTIVE_CHECK_S, signals.stop):
            continue
        signals.wake.clear()
        sleep_s: float | None
        try:
            sleep_s = await reconcile(ctx, namespace, name)
            failures = 0
        except Exception as exc:
            ctx.metrics.reconcile_errors.labels("JobSchedule").inc()
            sleep_s = RETRY_S[min(failures, len(RETRY_S) - 1)]
            failures += 1
            fields = {"namespace": namespace, "name": name, "error": str(exc), "retryS": sleep_s}
            if isinstance(exc, REDIS_DOWN):
                log.warning("schedule.redis_unavailable", **fields)
            else:
                log.exception("schedule.error", **fields)
        if sleep_s is None:
            log.info("schedule.forgotten", namespace=namespace, name=name)
            return
        await signals.nap(sleep_s)


async def reconcile(ctx: OperatorContext, namespace: str, name: str) -> float | None:
    """Fire the due bucket (if any) and bring the status up to date; returns how long to sleep,
    or None once the object is gone."""
    body = await ctx.kube.get_schedule(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    meta = body["metadata"]
    generation = int(meta.get("generation") or 0)
    status: dict[str, Any] = body.get("status") or {}
    now = datetime.now(UTC)
    stamp = isoformat(now)
    fields = {"namespace": namespace, "name": name}

    try:
        spec = check(
            {**(body.get("spec") or {}), "name": name, "namespace": namespace}, ctx.registry
        )
    except ScheduleError as exc:
        before = find_condition(status)
        reported = (
            before is not None
            and before.get("status") == "False"
            and before.get("reason") == exc.reason
            and before.get("observedGeneration") == generation
        )
        if not reported:
            log.warning("schedule.invalid", reason=exc.reason, error=exc.message, **fields)
            kopf.warn(as_body(body), reason=exc.reason, message=exc.message)
        await _write_status(
            ctx,
            namespace,
            name,
            status,
            {
                "observedGeneration": generation,
                "nextScheduleTime": None,
                "conditions": [
                    ready_condition(status, False, exc.reason, exc.message, generation, stamp)
                ],
            },
        )
        return MAX_SLEEP_S

    if spec.suspend:
        await _write_status(
            ctx,
            namespace,
            name,
            status,
            {
                "observedGeneration": generation,
                "nextScheduleTime": None,
                "conditions": [
                    ready_condition(
                        status,
                        True,
                        "Suspended",
                        "suspend is true: no jobs are enqueued",
                        generation,
                        stamp,
                    )
                ],
            },
        )
        return MAX_SLEEP_S

    floor = floor_bucket(
        spec, _moment(meta.get("creationTimestamp")), _moment(status.get("lastBucket"))
    )
    fired = await _fire(ctx, spec, now, floor)
    if fired is None:
        current = bucket_start(spec, now)
        if current is not None and (floor is None or current > floor):
            log.info(
                "schedule.missed",
                bucket=isoformat(current),
                lateS=round((now - current).total_seconds(), 3),
                **fields,
            )
    else:
        result = "duplicate" if fired.duplicate else "created"
        ctx.metrics.schedule_firings.labels(namespace, name, result).inc()
        log.info(
            "schedule.fired",
            bucket=isoformat(fired.bucket),
            jobId=fired.job_id,
            queue=fired.queue,
            duplicate=fired.duplicate,
            type=spec.type or "workflow",
            **fields,
        )
        if not fired.duplicate:
            what = (f"created workflow {fired.workflow_id}" if fired.workflow_id
                    else f"enqueued job {fired.job_id}")
            kopf.info(
                as_body(body),
                reason="Fired",
                message=f"{what} for bucket {isoformat(fired.bucket)}",
            )

    upcoming = next_fire(spec, now)
    wanted: dict[str, Any] = {
        "observedGeneration": generation,
        "nextScheduleTime": isoformat(upcoming) if upcoming else None,
        "conditions": [
            ready_condition(status, True, "Scheduled", describe(spec), generation, stamp)
        ],
    }
    if fired is not None:
        wanted |= {
            "lastScheduleTime": stamp,
            "lastBucket": isoformat(fired.bucket),
        }
        if fired.workflow_id:
            wanted["lastWorkflowId"] = fired.workflow_id
        else:
            wanted["lastJobId"] = fired.job_id
    await _write_status(ctx, namespace, name, status, wanted)
    if upcoming is None:
        return MAX_SLEEP_S
    left = (upcoming - datetime.now(UTC)).total_seconds() + WAKE_MARGIN_S
    return min(max(left, 0.0), MAX_SLEEP_S)


async def _fire(
    ctx: OperatorContext, spec: ScheduleSpec, now: datetime, floor: datetime | None
) -> FireResult | None:
    try:
        with ctx.client.root_span(f"fire {spec.name}", **{"jobq.schedule": spec.name,
                                                          "jobq.namespace": spec.namespace}):
            return await fire(spec, now, ctx.client.enqueue, floor,
                              ctx.client.create_workflow)
    except IdempotencyConflict as exc:
        # The schedule's payload changed mid-bucket: that bucket already has its job.
        bucket = due_bucket(spec, now, floor)
        if bucket is None:
            return None
        key = bucket_idempotency_key(spec, bucket)
        log.warning(
            "schedule.conflict",
            namespace=spec.namespace,
            name=spec.name,
            bucket=isoformat(bucket),
            error=str(exc),
        )
        if spec.workflow is not None:
            wf_id = workflow_id_for(key)
            return FireResult(bucket, key, wf_id, "", True, wf_id)
        assert spec.type is not None
        queue = ctx.registry.get(spec.type).queue
        return FireResult(bucket, key, keys.job_id_for(queue, key), queue, True)


async def _write_status(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    current: dict[str, Any],
    wanted: dict[str, Any],
) -> None:
    patch = status_patch(current, wanted)
    if patch:
        await ctx.kube.patch_schedule_status(namespace, name, patch)
