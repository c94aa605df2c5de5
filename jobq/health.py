"""The small HTTP endpoint every long-running jobq process (worker, operator) serves:
``/metrics`` from its own Prometheus registry and ``/healthz`` for the liveness probe.

It runs on a daemon thread, so a scrape never waits on the event loop and a metrics failure never
touches job execution; ``/healthz`` fails once the event loop has stopped turning, so a stuck
process is restarted by its probe.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from jobq.shutdown import wait_event

LOOP_STALL_S = 60.0  # /healthz fails when the event loop has not run for this long


class LoopBeat:
    """When the event loop last ran; ``run()`` is the task that keeps it fresh."""

    def __init__(self, stale_after_s: float = LOOP_STALL_S) -> None:
        self.stale_after_s = stale_after_s
        self.last = time.monotonic()
        self._stopping = asyncio.Event()

    def healthy(self) -> bool:
        return time.monotonic() - self.last < self.stale_after_s

    def stop(self) -> None:
        """End ``run()`` at its next turn (it does not rely on being cancelled)."""
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            self.last = time.monotonic()
            await wait_event(self._stopping, 1.0)


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
