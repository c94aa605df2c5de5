"""One relay process: its jobq client, its /metrics and /healthz, and the relay loop; shared by
``jobq outbox relay`` and Django's ``manage.py jobq_outbox_relay``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from jobq.contrib.outbox.metrics import OutboxMetrics
from jobq.contrib.outbox.relay import Relay
from jobq.health import LoopBeat, serve
from jobq.logs import get_logger
from jobq.settings import Settings
from jobq.sync import SyncClient
from jobq.tasks import Registry

log = get_logger("jobq.outbox")

STALL_S = 120.0  # /healthz fails when the loop has not turned for this long (a hung query)


def run_relay(
    connect: Callable[[], psycopg.Connection[Any]],
    settings: Settings,
    registry: Registry,
    stop: threading.Event,
    *,
    table: str,
    source: str,
    batch: int,
    poll_s: float,
    metrics_port: int | None,
    metrics_host: str = "0.0.0.0",
    until_empty: bool = False,
) -> int:
    """Relay until ``stop`` is set (or the outbox is empty, with ``until_empty``); exit code."""
    metrics = OutboxMetrics()
    beat = LoopBeat(STALL_S)
    http = serve(metrics.registry, metrics_port, beat, metrics_host) \
        if metrics_port is not None else None
    with SyncClient(settings, registry) as client:
        relay = Relay(connect, client, table=table, source=source, batch=batch, poll_s=poll_s,
                      metrics=metrics)
        ticker = threading.Thread(target=_keep_beat, args=(relay, beat, stop), daemon=True)
        ticker.start()
        log.info("outbox.relay_started", table=table, source=source, batch=batch,
                 metricsPort=http.server_port if http else None)
        try:
            relay.run(stop, until_empty=until_empty)
        finally:
            stop.set()
            relay.close()
            if http is not None:
                http.shutdown()
            log.info("outbox.relay_stopped", created=relay.total.created,
                     duplicate=relay.total.duplicate, failed=relay.total.failed)
    return 0


def _keep_beat(relay: Relay, beat: LoopBeat, stop: threading.Event) -> None:
    """Copy the relay loop's last turn into the probe's beat once a second."""
    while not stop.wait(1.0):
        beat.last = relay.last_beat
