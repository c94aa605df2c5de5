"""The operator's Prometheus metrics (SPEC §10) and its HTTP server for /metrics and /healthz.

Served from a daemon thread, so a scrape never waits on the event loop; /healthz fails when the
loop has stopped turning (a stuck operator gets restarted by its liveness probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LOOP_STALL_S = 60.0  # /healthz fails when the event loop has not run for this long


class OperatorMetrics:
    """Desired and current replicas per queue, schedule firings, reconcile errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.desired_replicas = Gauge(
            "jobq_operator_desired_replicas",
            "Replicas the backlog asks for, within the Deployment's min and max.",
            ("queue",),
            registry=r,
        )
        self.current_replicas = Gauge(
            "jobq_operator_current_replicas",
            "Replicas the worker Deployment is set to.",
            ("queue",),
            registry=r,
        )
        self.schedule_firings = Counter(
            "jobq_operator_schedule_firings",
            "JobSchedule firings; result=duplicate when the bucket's job already existed.",
            ("namespace", "name", "result"),
            registry=r,
        )
        self.reconcile_errors = Counter(
            "jobq_operator_reconcile_errors",
            "Failed evaluations of a JobSchedule or a worker Deployment.",
            ("kind",),
            registry=r,
        )
        self.leader = Gauge(
            "jobq_operator_leader", "1 while this operator acts, 0 while a peer does.", registry=r
        )

    def forget_queue(self, queue: str) -> None:
        for gauge in (self.desired_replicas, self.current_replicas):
            with contextlib.suppress(KeyError):
                gauge.remove(queue)


class LoopBeat:
    """When the event loop last ran."""

    def __init__(self, stale_after_s: float = LOOP_STALL_S) -> None:
        self.stale_after_s = stale_after_s
        self.last = time.monotonic()

    def healthy(self) -> bool:
        return time.monotonic() - self.last < self.stale_after_s

    async def run(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(1.0)


def serve(
    registry: CollectorRegistry, port: int, beat: LoopBeat, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on ``port`` (0 = any free port) from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, kind = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                ok = beat.healthy()
                body = b"ok\n" if ok else b"event loop stalled\n"
                status, kind = (200 if ok else 503), "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
