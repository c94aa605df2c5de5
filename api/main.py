"""Wiring only: ``create_app`` builds the FastAPI app from settings and a task registry."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib.metadata import version
from typing import TYPE_CHECKING

from fastapi import FastAPI

from jobq.api import errors, openapi
from jobq.api.auth import BearerAuth
from jobq.api.hosts import AllowedHosts
from jobq.api.limits import BodyLimit
from jobq.api.metrics import ApiMetrics, MetricsMiddleware, route_templates
from jobq.api.origin import SameOrigin
from jobq.api.routes import (
    admin,
    batch,
    dlq,
    events,
    health,
    jobs,
    queues,
    workers,
    workflow_reads,
    workflows,
)
from jobq.api.schemas import JobBatchCreate, ReplayRequest
from jobq.api.workflow_schemas import WorkflowCreate, WorkflowRetry
from jobq.bulk_replay import BulkReplayRequest
from jobq.client import Client
from jobq.connection import REDIS_DOWN, connect
from jobq.logs import get_logger
from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.watch import JobWatch
from jobq.workflows.metrics import observe_ends

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

# Redis connections one API process may hold: more than one uvicorn process can keep busy,
# so the pool never limits throughput; past it, requests queue for a free connection.
REDIS_CONNECTIONS = 512

log = get_logger("jobq.api")


def create_app(settings: Settings, registry: Registry, *,
               tracer_provider: TracerProvider | None = None) -> FastAPI:
    """The API app. Redis is opened in the lifespan and may be down: the app starts anyway,
    answers 503 meanwhile, and recovers by itself when Redis is back (R11).
    ``tracer_provider``: where the app's spans go (R25); default the global one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings.redis_url, max_connections=REDIS_CONNECTIONS)
        client = Client(redis, registry, settings, tracer_provider=tracer_provider)
        app.state.client = client
        observe_ends(client.workflows.relay.wf, app.state.metrics.workflow_duration)
        app.state.watch = JobWatch(client)
        try:
            await client.scripts.load()
        except REDIS_DOWN as exc:  # scripts load again on first use (NOSCRIPT)
            log.warning("api.redis_unavailable", phase="startup", error=str(exc))
        app.openapi()  # built now rather than by the first client that asks
        # Everything made so far lives as long as the process: keep it out of every later
        # garbage collection, so full collections stay short (they are tail latency).
        gc.collect()
        gc.freeze()
        log.info("api.ready", queues=registry.queues, auth=bool(settings.api_tokens))
        try:
            yield
        finally:
            gc.unfreeze()  # an app that stops in a process that goes on (tests) is garbage
            await app.state.watch.close()
            with suppress(*REDIS_DOWN):
                await redis.aclose()

    app = FastAPI(
        title="jobq",
        version=version("jobq"),
        summary="Background jobs on Redis: retries, a dead-letter queue and explicit replay.",
        lifespan=lifespan,
    )
    metrics = ApiMetrics()
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    errors.install(app)
    for router in (batch.router, events.router, jobs.router, dlq.router, queues.router,
                   health.router, workflow_reads.router, workflows.router):
        app.include_router(router)
    app.include_router(admin.router)
    app.include_router(workers.router)
    if settings.ui:
        from jobq.api import ui

        app.include_router(ui.router)
    openapi.customize(app, registry, bearer=bool(settings.api_tokens),
                      bodies=[ReplayRequest, BulkReplayRequest, JobBatchCreate, WorkflowCreate,
                              WorkflowRetry])

    # Outermost last: metrics see every answer, a foreign Host is refused first, auth runs
    # before any body is read.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SameOrigin)
    if settings.api_tokens:
        app.add_middleware(BearerAuth, tokens=settings.api_tokens)
    app.add_middleware(AllowedHosts, hosts=settings.api_allowed_hosts)
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=lambda: route_templates(app))
    return app
