"""The operator process: kopf watches JobSchedules and annotated worker Deployments; one loop per
object fires schedules or scales the Deployment.

Why no ``@kopf.timer``/``@kopf.daemon``: kopf puts a finalizer on every object a timer or daemon
serves, so deleting such an object blocks until an operator removes it. A JobSchedule deleted
while no operator runs, or the worker Deployments that ``helm uninstall`` deletes together with
the operator, would hang in Terminating. ``@kopf.on.event`` needs no finalizer and writes nothing
to the objects; the per-object loops (``ObjectLoops``) stand in for daemons, and
``jobq.operator.peering`` keeps them to kopf's peering (one active operator at a time).

What kopf already streams is not read again: the KopfPeering reaches ``Peering.observe`` from an
``@kopf.on.event`` handler, and the autoscaled Deployments are kept in a kopf index
(``autoscaled_deployments``) that the autoscaling loops read instead of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import kopf

from jobq.client import Client
from jobq.connection import connect
from jobq.health import LoopBeat, serve
from jobq.logs import get_logger
from jobq.operator.autoscale import QUEUE, autoscale_deployment, index_entry
from jobq.operator.context import OperatorContext
from jobq.operator.kube import CLUSTER_PEERINGS, PEERINGS, Kube
from jobq.operator.metrics import OperatorMetrics
from jobq.operator.peering import Peering
from jobq.operator.schedules import needs_reconcile, run_schedule
from jobq.operator.waits import wait_any
from jobq.settings import Settings
from jobq.tasks import Registry

PEERING_NAME = "jobq"  # the namespaced KopfPeering the chart creates
PRIORITY_RANGE = (1, 2**31 - 1)  # random priorities: equal ones would pause every peer
BACKGROUND_STOP_S = 5.0  # how long the background loops get to end on their flag at exit

log = get_logger("jobq.operator")


@dataclass(frozen=True, slots=True)
class OperatorOptions:
    namespace: str | None
    """The one namespace watched; None watches all (cluster-wide peering)."""
    metrics_port: int = 9102
    standalone: bool = False
    """No peering: act even if other operators run (idempotent, but duplicated work)."""
    priority: int | None = None
    """kopf peering priority; the highest live one acts. None picks a random one."""
    peering_name: str = PEERING_NAME


def make_identity() -> str:
    """Unique per process; the host name is the pod name in a cluster."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


def build_registry(ctx: OperatorContext, options: OperatorOptions) -> kopf.OperatorRegistry:
    """kopf's handlers for this process, in a registry of its own (nothing global)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        settings.peering.name = options.peering_name
        settings.peering.standalone = options.standalone
        settings.peering.mandatory = not options.standalone
        settings.peering.priority = ctx.peering.priority
        # Only what the handlers post explicitly (Fired, Scaled, problems) becomes an Event.
        settings.posting.enabled = True
        settings.posting.loggers = False
        settings.posting.level = logging.INFO
        # Re-list now and then even if a watch silently stalls behind a proxy.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        # The same index object for the whole run; kopf keeps it up to date from its stream.
        ctx.deployments = kwargs["autoscaled_deployments"]

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.cleanup(registry=registry)
    async def stop_loops(**_: Any) -> None:
        await ctx.loops.stop_all()

    @kopf.on.event("jobq.io", "v1", "jobschedules", registry=registry)
    async def schedule_event(
        type: str, body: kopf.Body, name: str, namespace: str | None, **_: Any
    ) -> None:
        assert namespace is not None  # JobSchedules are namespaced
        key = ("JobSchedule", namespace, name)
        if type == "DELETED":
            ctx.loops.stop(key)
            log.info("schedule.forgotten", namespace=namespace, name=name)
            return
        start = functools.partial(run_schedule, ctx, namespace, name)
        ctx.loops.ensure(key, start, wake=needs_reconcile(body))

    # The id is the keyword under which kopf hands the index to every handler.
    @kopf.index(
        "apps", "v1", "deployments", id="autoscaled_deployments",
        annotations={QUEUE: kopf.PRESENT}, registry=registry,
    )
    def autoscaled_deployments(
        body: kopf.Body, name: str, namespace: str | None, uid: str | None, **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """What the autoscaler needs of each annotated Deployment, by (namespace, name).
        kopf drops an entry when its Deployment is deleted or loses the annotation."""
        return {(namespace or "", name): index_entry(body)}

    @kopf.on.event(
        "apps", "v1", "deployments", annotations={QUEUE: kopf.PRESENT}, registry=registry
    )
    async def deployment_event(type: str, name: str, namespace: str | None, **_: Any) -> None:
        assert namespace is not None
        key = ("Deployment", namespace, name)
        if type == "DELETED":
            ctx.loops.stop(key)
            log.info("autoscale.forgotten", namespace=namespace, deployment=name)
            return
        ctx.loops.ensure(key, functools.partial(autoscale_deployment, ctx, namespace, name))

    if not options.standalone:
        group, version, plural = PEERINGS if options.namespace else CLUSTER_PEERINGS

        @kopf.on.event(group, version, plural, registry=registry)
        async def peering_event(type: str, body: kopf.Body, name: str, **_: Any) -> None:
            """kopf's own stream of the KopfPeering: no second client polls it."""
            if name == options.peering_name:
                ctx.peering.observe(None if type == "DELETED" else dict(body.get("status") or {}))

    return registry


async def run_operator(settings: Settings, registry: Registry, options: OperatorOptions) -> int:
    """Run until SIGTERM or SIGINT (kopf handles both); returns the exit code."""
    kube = Kube.from_environment()
    redis = connect(settings.redis_url)
    metrics = OperatorMetrics()
    beat = LoopBeat()
    http = serve(metrics.registry, options.metrics_port, beat)
    identity = make_identity()
    priority = options.priority if options.priority is not None else random.randint(*PRIORITY_RANGE)
    peering = Peering(
        identity, priority, standalone=options.standalone, name=options.peering_name
    )
    metrics.leader.set_function(lambda: 1.0 if peering.active else 0.0)
    ctx = OperatorContext(
        settings, registry, redis, Client(redis, registry, settings), kube, metrics, peering
    )
    stop = asyncio.Event()  # ends the background loops below (checked every turn)
    background = [
        asyncio.create_task(keep_beating(beat, stop), name="loop-beat"),
        asyncio.create_task(peering.run(stop), name="peering"),
    ]
    log.info(
        "operator.started",
        metricsPort=http.server_port,
        identity=identity,
        priority=priority,
        standalone=options.standalone,
        namespace=options.namespace or "*",
    )
    where: dict[str, Any] = (
        {"clusterwide": True} if options.namespace is None else {"namespaces": [options.namespace]}
    )
    try:
        await kopf.operator(
            registry=build_registry(ctx, options), identity=cast(Any, identity), **where
        )
    finally:
        await ctx.loops.stop_all()
        stop.set()
        _, running = await asyncio.wait(background, timeout=BACKGROUND_STOP_S)
        for task in running:  # the flag did not do it: cancelling is the second means
            task.cancel()
        await asyncio.wait(background, timeout=BACKGROUND_STOP_S)
        http.shutdown()
        kube.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(BACKGROUND_STOP_S):
                await redis.aclose()
        log.info("operator.stopped", identity=identity)
    return 0


async def keep_beating(beat: LoopBeat, stop: asyncio.Event) -> None:
    """Keep /healthz's proof that the event loop runs fresh, until ``stop`` is set."""
    while not stop.is_set():
        beat.last = time.monotonic()
        await wait_any([stop], 1.0)
