"""The API's Prometheus metrics (listed in docs/operations.md), in a registry of each app's own,
and the ASGI middleware that counts every request by route template (never by raw path: bounded
labels)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import RedisCluster
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobq.api.workflow_metrics import WorkflowGauges
from jobq.client import Client
from jobq.logs import get_logger
from jobq.workflows.metrics import duration_histogram

UNMATCHED = "<unmatched>"  # the route label of requests no route matched (404s)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COUNTS_TIMEOUT_S = 2.0  # a scrape waits this long for queue depths, then goes on without them
# Scrapes within this many seconds of a read share it: concurrent or repeated scrapes (several
# Prometheus replicas, a curl loop) cost Redis one read of every queue per second at most.
COUNTS_CACHE_S = 1.0
CONTENT_TYPE = CONTENT_TYPE_LATEST

log = get_logger("jobq.api")


class ApiMetrics:
    """Request, enqueue and queue-depth metrics of one API process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("jobq_api_requests_total", "HTTP requests answered.",
                                ("route", "method", "status"), registry=r)
        self.duration = Histogram("jobq_api_request_duration_seconds",
                                  "Time to answer an HTTP request.", ("route", "method"),
                                  buckets=DURATION_BUCKETS, registry=r)
        self.enqueued = Counter("jobq_jobs_enqueued_total",
                                "Jobs submitted through the API (result=created|duplicate).",
                                ("queue", "type", "result"), registry=r)
        self.queue_jobs = Gauge("jobq_queue_jobs", "Jobs per queue and state, read at scrape.",
                                ("queue", "state"), registry=r)
        self.redis_up = Gauge("jobq_api_redis_up",
                              "1 when the last scrape could read the queue depths from Redis.",
                              registry=r)
        # From INFO memory of a single-node Redis (not exported for a cluster): the alert on
        # them warns before maxmemory is reached and writes are refused (503).
        self.redis_memory = Gauge("jobq_redis_memory_used_bytes",
                                  "Memory Redis uses (INFO memory used_memory), read at scrape.",
                                  registry=r)
        self.redis_maxmemory = Gauge("jobq_redis_maxmemory_bytes",
                                     "Redis's maxmemory (0 = no limit), read at scrape.",
                                     registry=r)
        self.workflow = WorkflowGauges(r)
        self.workflow_duration = duration_histogram(r)
        self._read: asyncio.Future[Snapshot] | None = None
        self._read_at = 0.0
        # Label children are cached: .labels() takes a lock and builds a key on every call.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}
        self._enqueued: dict[tuple[str, str, bool], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        timed = self._timed.get((route, method))
        if timed is None:
            timed = self._timed[(route, method)] = self.duration.labels(route, method)
        timed.observe(seconds)

    def job_enqueued(self, queue: str, task_type: str, duplicate: bool) -> None:
        key = (queue, task_type, duplicate)
        counter = self._enqueued.get(key)
        if counter is None:
            result = "duplicate" if duplicate else "created"
            counter = self._enqueued[key] = self.enqueued.labels(queue, task_type, result)
        counter.inc()

    def _snapshot(self, client: Client) -> asyncio.Future[Snapshot]:
        """The shared read of queue depths: the one in flight or under COUNTS_CACHE_S old,
        else a new one (started at most once per COUNTS_CACHE_S, however many scrape)."""
        now = time.monotonic()
        if self._read is None or (self._read.done() and now - self._read_at >= COUNTS_CACHE_S):
            self._read_at = now
            self._read = asyncio.ensure_future(read_snapshot(client))
            self._read.add_done_callback(_retrieve)
        return self._read

    async def render(self, client: Client) -> bytes:
        """The exposition text, with queue depths at most COUNTS_CACHE_S old; Redis trouble
        only drops them."""
        queues: list[str] | None = None
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # (gh-86296), and a request cancelled at shutdown must end. Shielded: the read is
            # shared, a scrape that gives up must not cancel it for the others.
            async with asyncio.timeout(COUNTS_TIMEOUT_S):
                counts, memory = await asyncio.shield(self._snapshot(client))
        except Exception as exc:  # a metrics failure must never break /metrics
            log.warning("api.metrics_counts_failed", error=repr(exc))
            self.queue_jobs.clear()
            self.redis_up.set(0)
            for gauge in (self.redis_memory, self.redis_maxmemory):
                gauge.set(float("nan"))
        else:
            if memory is not None:
                self.redis_memory.set(memory[0])
                self.redis_maxmemory.set(memory[1])
            for queue, states in counts.items():
                for state, n in states.items():
                    if state == "paused":  # a flag, not a job count (workers export it)
                        continue
                    self.queue_jobs.labels(queue, state).set(n)
            self.redis_up.set(1)
            queues = list(counts)
        await self._workflows(client, queues)
        return generate_latest(self.registry)

    async def _workflows(self, client: Client, queues: list[str] | None) -> None:
        """The workflow gauges (api/workflow_metrics.py) of ``queues``, the queues the depth
        read found (no second read of the queue set); Redis trouble only drops them."""
        if queues is None:
            self.workflow.clear()
            return
        try:
            async with asyncio.timeout(COUNTS_TIMEOUT_S):
                snap = await asyncio.shield(self.workflow.shared_read(client, queues))
        except Exception as exc:
            log.warning("api.metrics_workflows_failed", error=repr(exc))
            self.workflow.clear()
        else:
            self.workflow.set(snap)


# A read's queue depths, and Redis's (used_memory, maxmemory) when it is a single node.
Snapshot = tuple[dict[str, dict[str, int | bool]], tuple[int, int] | None]


async def read_snapshot(client: Client) -> Snapshot:
    """Queue depths and, on a single-node Redis, its memory use against maxmemory."""
    counts_read = client.counts()
    if isinstance(client.redis, RedisCluster):  # per node: one pair would mislead
        return await counts_read, None
    counts, info = await asyncio.gather(counts_read, client.redis.info("memory"))
    return counts, (int(info["used_memory"]), int(info["maxmemory"]))


def _retrieve(read: asyncio.Future[Snapshot]) -> None:
    """Mark a shared read's failure as seen: a read nobody awaited any more (its scrapes
    timed out) must not log 'exception was never retrieved'."""
    if not read.cancelled():
        read.exception()


def route_templates(app: FastAPI) -> list[str]:
    """The path templates ``app`` serves, as its OpenAPI document spells them (router
    prefixes included), plus the document's own pages."""
    pages = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    return [*app.openapi()["paths"], *(page for page in pages if page)]


class MetricsMiddleware:
    """Time and count each HTTP request by its route template, method and status. The
    template is matched here, not taken from routing, so that answers given before routing
    (401, 413) are counted for their route too."""

    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, templates: Callable[[], Iterable[str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._templates = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def _template(self, scope: Scope) -> str:
        if self._compiled is None:  # the first request: the app is complete by now
            self._compiled = [(compile_path(t)[0], t) for t in self._templates()]
        path = scope["path"]
        return next((t for regex, t in self._compiled if regex.match(path)), UNMATCHED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.observe(self._template(scope), scope["method"], status,
                                 time.perf_counter() - start)
