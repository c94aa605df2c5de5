"""The worker's Prometheus metrics and its small HTTP server for /metrics and /healthz.

Served from a daemon thread so a scrape never waits on the event loop, and a metrics failure
never touches job execution.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LABELS = ("queue", "type")
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                300)


class WorkerMetrics:
    """SPEC §10's worker metrics, in a registry of this process's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.completed = Counter("jobq_jobs_completed_total", "Jobs completed.", LABELS,
                                 registry=r)
        self.attempts_failed = Counter(
            "jobq_job_attempts_failed_total",
            "Attempts that failed in the handler (errors, timeouts), retries included.",
            LABELS, registry=r)
        self.duration = Histogram("jobq_job_duration_seconds",
                                  "Handler run time of successful jobs.", LABELS, registry=r)
        self.dlq = Counter("dlq_jobs", "Jobs that entered the dead-letter queue.", LABELS,
                           registry=r)
        self.recovered = Counter("jobq_jobs_recovered_total",
                                 "Jobs that succeeded after a failed or lost attempt.", LABELS,
                                 registry=r)
        self.wait = Histogram("jobq_job_wait_seconds", "Time from ready to started.", LABELS,
                              buckets=WAIT_BUCKETS, registry=r)
        self.lost = Counter("jobq_jobs_lost_total",
                            "Attempts taken back after their lease expired (worker crashes).",
                            LABELS, registry=r)
        self.in_flight = Gauge("jobq_worker_jobs_in_flight", "Jobs running now.", ("queue",),
                               registry=r)
        self._children: dict[tuple[str, str], TaskMetrics] = {}

    def of(self, queue: str, task_type: str) -> TaskMetrics:
        """The labelled series of one (queue, type), looked up once: ``labels()`` is not free."""
        key = (queue, task_type)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = TaskMetrics(
                completed=self.completed.labels(*key), duration=self.duration.labels(*key),
                recovered=self.recovered.labels(*key), wait=self.wait.labels(*key),
            )
        return found


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """The per-job series of one (queue, type) on the hot path."""

    completed: Counter
    duration: Histogram
    recovered: Counter
    wait: Histogram


def serve(
    metrics: WorkerMetrics, port: int, healthy: Callable[[], bool], host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on ``port`` (0 = any free port) from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, kind = generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                ok = healthy()
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


class Heartbeat:
    """When the event loop last ran; /healthz fails when it has been stuck for too long."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def healthy(self) -> bool:
        return time.monotonic() - self.last < self.stale_after_s
