"""``manage.py jobq_outbox_relay``: ``jobq outbox relay`` on a database of ``DATABASES``, with
jobq's settings from ``settings.JOBQ``."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from jobq.contrib.django.client import get_client
from jobq.contrib.outbox.relay import BATCH, POLL_S
from jobq.contrib.outbox.schema import DEFAULT_SOURCE, DEFAULT_TABLE
from jobq.contrib.outbox.serve import run_relay
from jobq.logs import configure_logging


class Command(BaseCommand):
    help = "Move committed outbox rows into jobq until SIGTERM (any number may run at once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default",
                            help="The DATABASES alias whose outbox to relay.")
        parser.add_argument("--source", default=DEFAULT_SOURCE,
                            help="First part of each row's idempotency key.")
        parser.add_argument("--batch", type=int, default=BATCH)
        parser.add_argument("--poll-s", type=float, default=POLL_S)
        parser.add_argument("--metrics-port", type=int, default=9102,
                            help="Port of /metrics and /healthz (0 = any free port).")
        parser.add_argument("--until-empty", action="store_true",
                            help="Exit once no row is left to move.")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            raise CommandError("the outbox relay needs PostgreSQL (FOR UPDATE SKIP LOCKED)")
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)  # Django's own; the relay uses plain cursors
        params.pop("context", None)
        params.pop("server_side_binding", None)
        params.pop("prepare_threshold", None)
        client = get_client()  # settings.JOBQ, checked before the relay starts
        settings, registry = client.settings, client.registry
        configure_logging(settings.log_level, settings.log_format)
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        run_relay(lambda: psycopg.connect(**params), settings, registry, stop,
                  table=DEFAULT_TABLE, source=options["source"], batch=options["batch"],
                  poll_s=options["poll_s"], metrics_port=options["metrics_port"],
                  until_empty=options["until_empty"])
