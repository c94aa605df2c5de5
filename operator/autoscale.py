"""Autoscaling worker Deployments from their queue's backlog (docs/operations.md, Autoscaling).

The decision is pure (``parse_policy``, ``desired_replicas``, ``decide``, ``deletion_costs``) and
tested without a cluster; ``autoscale_deployment`` is the thin loop that reads Redis and the
Deployment (from kopf's index, see ``DeploymentLoop``), decides, and patches the ``scale``
subresource.

State that must survive an operator restart or a hand-over between peers (since when the desire
has been below the current size) lives in an annotation on the Deployment, not in memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from jobq import keys
from jobq.connection import REDIS_DOWN, redis_now_ms
from jobq.jobs import loads
from jobq.logs import get_logger
from jobq.operator.backlog import Backlog, read_backlog, read_heartbeats
from jobq.operator.context import LoopSignals, OperatorContext
from jobq.operator.kube import as_body

QUEUE = "jobq.io/queue"
MIN_REPLICAS = "jobq.io/min-replicas"
MAX_REPLICAS = "jobq.io/max-replicas"
JOBS_PER_REPLICA = "jobq.io/jobs-per-replica"
SCALE_DOWN_DELAY = "jobq.io/scale-down-delay"
# Written by the operator: since when the desire has been below the Deployment's size (RFC 3339).
LOWER_SINCE = "jobq.io/scale-down-since"
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

DEFAULT_MIN_REPLICAS = 1
DEFAULT_MAX_REPLICAS = 10
DEFAULT_JOBS_PER_REPLICA = 10
DEFAULT_SCALE_DOWN_DELAY_S = 300.0
MAX_REPLICAS_LIMIT = 10_000
INTERVAL_S = 2.0  # how often each Deployment's backlog is re-read (also how fast 0 -> 1 wakes)
ACTIVE_CHECK_S = 1.0  # longest wait for the peering before the stop flag is checked again

log = get_logger("jobq.operator.autoscale")


class PolicyError(ValueError):
    """The autoscaling annotations of a Deployment cannot be used."""


@dataclass(frozen=True, slots=True)
class ScalePolicy:
    """The ``jobq.io/*`` annotations of one worker Deployment."""

    queue: str
    min_replicas: int = DEFAULT_MIN_REPLICAS
    max_replicas: int = DEFAULT_MAX_REPLICAS
    jobs_per_replica: int = DEFAULT_JOBS_PER_REPLICA
    scale_down_delay_s: float = DEFAULT_SCALE_DOWN_DELAY_S


@dataclass(frozen=True, slots=True)
class Decision:
    """What one evaluation concluded."""

    replicas: int
    """What the Deployment should be set to now (its current size while a scale-down waits)."""
    desired: int
    """What the backlog asks for, clamped to the policy's bounds."""
    lower_since: float | None
    """Since when (epoch seconds) the desire has been below the current size; None if it is not."""


def _int_annotation(annotations: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = annotations.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise PolicyError(f"{name}: {raw!r} is not a whole number") from None
    if value < low:
        raise PolicyError(f"{name}: must be at least {low}, got {value}")
    return value


def parse_policy(annotations: Mapping[str, str]) -> ScalePolicy:
    """The policy of a Deployment's annotations; unset ones take the defaults."""
    queue = (annotations.get(QUEUE) or "").strip()
    if not queue:
        raise PolicyError(f"{QUEUE}: must name a queue")
    low = _int_annotation(annotations, MIN_REPLICAS, DEFAULT_MIN_REPLICAS, 0)
    high = _int_annotation(annotations, MAX_REPLICAS, max(DEFAULT_MAX_REPLICAS, low), 1)
    if high > MAX_REPLICAS_LIMIT:
        raise PolicyError(f"{MAX_REPLICAS}: at most {MAX_REPLICAS_LIMIT}, got {high}")
    if low > high:
        raise PolicyError(f"{MIN_REPLICAS} ({low}) is above {MAX_REPLICAS} ({high})")
    per = _int_annotation(annotations, JOBS_PER_REPLICA, DEFAULT_JOBS_PER_REPLICA, 1)
    delay = _int_annotation(annotations, SCALE_DOWN_DELAY, int(DEFAULT_SCALE_DOWN_DELAY_S), 0)
    return ScalePolicy(queue, low, high, per, float(delay))


def desired_replicas(backlog: int, policy: ScalePolicy) -> int:
    """clamp(ceil(backlog / jobs-per-replica), min, max)."""
    wanted = math.ceil(max(backlog, 0) / policy.jobs_per_replica)
    return max(policy.min_replicas, min(policy.max_replicas, wanted))


def decide(
    policy: ScalePolicy, backlog: int, current: int, lower_since: float | None, now: float
) -> Decision:
    """Scale up at once; scale down only once the desire has stayed below ``current`` for the
    whole delay. Any evaluation that wants at least ``current`` restarts that wait, so a backlog
    that comes and goes never makes the Deployment flap."""
    desired = desired_replicas(backlog, policy)
    if desired >= current:
        return Decision(desired, desired, None)
    since = now if lower_since is None else min(lower_since, now)
    if now - since >= policy.scale_down_delay_s:
        return Decision(desired, desired, None)
    return Decision(current, desired, since)


def deletion_costs(
    pods: Iterable[str], heartbeats: Iterable[Mapping[str, Any]], now_ms: int, stale_after_ms: int
) -> dict[str, int]:
    """``pod-deletion-cost`` per pod: its jobs in flight, from fresh worker heartbeats.

    The ReplicaSet controller removes the lowest cost first, so idle pods (and pods with no
    heartbeat: starting, or not a worker yet) go before the ones running jobs.
    """
    inflight: dict[str, int] = {}
    for beat in heartbeats:
        pod, seen = beat.get("pod"), beat.get("seenAt")
        if not isinstance(pod, str) or not isinstance(seen, int | float):
            continue
        if now_ms - seen > stale_after_ms:
            continue
        count = beat.get("inflight", 0)
        inflight[pod] = inflight.get(pod, 0) + (count if isinstance(count, int) else 0)
    return {pod: max(inflight.get(pod, 0), 0) for pod in pods}


def format_since(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_since(raw: str | None) -> float | None:
    """The ``scale-down-since`` annotation; a malformed one counts as absent (restarts the wait)."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


# --- what the loop knows of its Deployment ---


def index_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Deployment the autoscaler reads (and ``kopf.info`` needs), copied out of
    the body kopf streamed; the value of kopf's ``autoscaled_deployments`` index."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    kept = ("name", "namespace", "uid", "generation", "annotations", "deletionTimestamp")
    return {
        "apiVersion": body.get("apiVersion") or "apps/v1",
        "kind": body.get("kind") or "Deployment",
        "metadata": {key: copy.deepcopy(meta[key]) for key in kept if key in meta},
        "spec": {
            "replicas": spec.get("replicas", 1),
            "selector": copy.deepcopy(spec.get("selector") or {}),
        },
    }


@dataclass(frozen=True, slots=True)
class Size:
    """A Deployment's ``spec.replicas`` as one loop knows it, with the spec generation it is of."""

    uid: str
    generation: int
    replicas: int

    def scaled(self, replicas: int) -> Size:
        """After the loop's own scale: the API server makes it the next spec generation."""
        return Size(self.uid, self.generation + 1, replicas)


def known_size(known: Size | None, body: Mapping[str, Any], *, fresh: bool = False) -> Size:
    """What the Deployment is set to. A streamed body replaces what the loop knows only with a
    newer spec generation (or when it is another object of that name): the loop's own scale
    counts as the next generation, so the stream's late echo of the spec before it cannot undo
    it. A body just read from the API (``fresh``) also wins at the same generation."""
    meta = body.get("metadata") or {}
    seen = Size(
        str(meta.get("uid") or ""),
        int(meta.get("generation") or 0),
        int((body.get("spec") or {}).get("replicas", 1)),
    )
    if known is None or seen.uid != known.uid or seen.generation > known.generation:
        return seen
    if fresh and seen.generation >= known.generation:
        return seen
    return known


# --- the loop ---


async def autoscale_deployment(
    ctx: OperatorContext, namespace: str, name: str, signals: LoopSignals
) -> None:
    """Evaluate one annotated Deployment every INTERVAL_S until it is gone or unannotated, or
    the loop is asked to stop (checked every turn; every wait is bounded)."""
    loop = DeploymentLoop(ctx, namespace, name)
    fields = {"namespace": namespace, "deployment": name}
    try:
        while not signals.stopping:
            if not ctx.peering.active:
                loop.stale = True  # a peer may act meanwhile: re-read before acting again
                await ctx.peering.wait_active(ACTIVE_CHECK_S, signals.stop)
                continue
            signals.wake.clear()
            try:
                if not await loop.evaluate():
                    log.info("autoscale.forgotten", **fields)  # gone, or no longer annotated
                    return
            except REDIS_DOWN as exc:
                ctx.metrics.reconcile_errors.labels("Deployment").inc()
                log.warning("autoscale.redis_unavailable", error=str(exc), **fields)
            except Exception as exc:  # never let one Deployment stop the loop
                ctx.metrics.reconcile_errors.labels("Deployment").inc()
                log.exception("autoscale.error", error=str(exc), **fields)
            await signals.nap(INTERVAL_S)
    finally:
        if loop.queue is not None:
            ctx.metrics.forget_queue(loop.queue)


class DeploymentLoop:
    """The state one autoscaling loop keeps between evaluations.

    The Deployment comes from kopf's index, not from the API: the loop reads it directly only
    after a pause (kopf reports no deletion it missed while paused, and a peer may have changed
    the Deployment meanwhile) or when the index holds more than one object of that name. What
    the loop wrote itself it remembers, since the stream may echo an older state for a moment:
    its size by spec generation (``known_size``), and the scale-down wait, read from the
    annotation only when the loop starts or resumes.
    """

    def __init__(self, ctx: OperatorContext, namespace: str, name: str) -> None:
        self.ctx = ctx
        self.namespace = namespace
        self.name = name
        self.stale = False  # read the Deployment from the API before the next evaluation
        self.size: Size | None = None
        self.lower_since: float | None = None
        self.annotation: str | None = None  # LOWER_SINCE as last read or written
        self.since_loaded = False
        self.bad_policy: str | None = None  # the last invalid annotations reported, once each
        self.queue: str | None = None

    async def _body(self) -> tuple[dict[str, Any] | None, bool]:
        """The Deployment and whether it was just read from the API; None once it is gone."""
        index = self.ctx.deployments
        if not self.stale and index is not None:
            entries = list(index.get((self.namespace, self.name), ()))
            uid = self.size.uid if self.size is not None else None
            matching = [e for e in entries if uid is None or e["metadata"].get("uid") == uid]
            if not entries:
                return None, False  # deleted, or no longer annotated: kopf dropped it
            if len(matching) == 1:
                return matching[0], False
        body = await self.ctx.kube.get_deployment(self.namespace, self.name)
        self.stale = False
        return body, True

    async def evaluate(self) -> bool:
        """One evaluation; False once the Deployment is gone or no longer autoscaled."""
        ctx, namespace, name = self.ctx, self.namespace, self.name
        deployment, fresh = await self._body()
        if deployment is None:
            return False
        meta = deployment.get("metadata", {})
        annotations: dict[str, str] = meta.get("annotations") or {}
        if QUEUE not in annotations or meta.get("deletionTimestamp"):
            return False
        try:
            policy = parse_policy(annotations)
        except PolicyError as exc:
            if str(exc) != self.bad_policy:
                ctx.metrics.reconcile_errors.labels("Deployment").inc()
                log.warning(
                    "autoscale.invalid_policy", namespace=namespace, deployment=name, error=str(exc)
                )
                kopf.warn(as_body(deployment), reason="InvalidAutoscaling", message=str(exc))
            self.bad_policy = str(exc)
            return True
        self.bad_policy = None
        self.queue = policy.queue

        size = known_size(self.size, deployment, fresh=fresh)
        if fresh or not self.since_loaded or (self.size is not None and size.uid != self.size.uid):
            self.annotation = annotations.get(LOWER_SINCE)
            self.lower_since = parse_since(self.annotation)
            self.since_loaded = True
        self.size = size

        backlog = await read_backlog(ctx.redis, ctx.queue_keys(policy.queue))
        current = size.replicas
        now = ctx.clock()
        waited_since = self.lower_since
        decision = decide(policy, backlog.total, current, waited_since, now)
        ctx.metrics.desired_replicas.labels(policy.queue).set(decision.desired)

        try:
            if decision.replicas != current:
                if decision.replicas < current:
                    await _mark_idle_pods(ctx, namespace, deployment, policy.queue)
                await ctx.kube.scale_deployment(namespace, name, decision.replicas)
                self.size = size.scaled(decision.replicas)
                message = (
                    f"scaled from {current} to {decision.replicas} replicas: backlog "
                    f"{backlog.total} (waiting {backlog.waiting}, due delayed "
                    f"{backlog.due_delayed}, active {backlog.active})"
                )
                kopf.info(as_body(deployment), reason="Scaled", message=message)
                log.info(
                    "autoscale.scaled",
                    namespace=namespace,
                    deployment=name,
                    queue=policy.queue,
                    fromReplicas=current,
                    toReplicas=decision.replicas,
                    backlog=backlog.total,
                    lowerForS=None if waited_since is None else round(now - waited_since, 3),
                )
            ctx.metrics.current_replicas.labels(policy.queue).set(decision.replicas)

            since = format_since(decision.lower_since)
            if since != self.annotation:
                await ctx.kube.annotate_deployment(namespace, name, {LOWER_SINCE: since})
                self.annotation = since
            self.lower_since = decision.lower_since
        except ApiException as exc:
            if exc.status == 404:  # deleted since kopf last streamed it
                return False
            raise
        return True


async def _mark_idle_pods(
    ctx: OperatorContext, namespace: str, deployment: Mapping[str, Any], queue: str
) -> None:
    """Set ``pod-deletion-cost`` from the heartbeats so the scale-down removes idle pods."""
    match = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    if not match:
        return
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    pods = await ctx.kube.list_pods(namespace, selector)
    beats = []
    for raw in (await read_heartbeats(ctx.redis, ctx.queue_keys(queue))).values():
        try:
            beat = loads(raw)
        except ValueError:
            continue
        if isinstance(beat, dict):
            beats.append(beat)
    names = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
    now = await redis_now_ms(ctx.redis)  # heartbeats are stamped on Redis's clock too
    costs = deletion_costs(names, beats, now, int(keys.HEARTBEAT_STALE_S * 1000))
    current = {p["metadata"]["name"]: (p["metadata"].get("annotations") or {}) for p in pods}
    for pod, cost in costs.items():
        if current[pod].get(POD_DELETION_COST) != str(cost):
            await ctx.kube.annotate_pod(namespace, pod, {POD_DELETION_COST: str(cost)})


__all__ = [
    "Backlog",
    "Decision",
    "PolicyError",
    "ScalePolicy",
    "Size",
    "autoscale_deployment",
    "decide",
    "deletion_costs",
    "desired_replicas",
    "index_entry",
    "known_size",
    "parse_policy",
]
