"""Helpers of the outbox tests: a fresh database per test with the outbox table (created from the
SQLAlchemy table, so the tests exercise it), rows written as an app would, and relay processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from fixtures import Proc, events, process_env
from postgres import PostgresServer

from jobq.settings import Settings

WELCOME = {"email": "albert@example.com", "name": "Albert"}


def outbox_database(postgres: PostgresServer) -> str:
    """A new database holding an empty outbox table; its DSN."""
    from sqlalchemy import create_engine

    from jobq.contrib.outbox.table import metadata

    dsn = postgres.create_database(f"outbox_{uuid.uuid4().hex[:12]}")
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    metadata.create_all(engine)
    engine.dispose()
    return dsn


def insert_rows(dsn: str, count: int, task: str = "welcome-email",
                payload: dict[str, Any] | None = None) -> list[int]:
    """``count`` rows committed in one transaction; their ids."""
    with psycopg.connect(dsn) as conn:
        return [conn.execute("INSERT INTO jobq_outbox (task, payload) VALUES (%s, %s) RETURNING id",
                             (task, psycopg.types.json.Jsonb(payload or WELCOME))).fetchone()[0]
                for _ in range(count)]


def pending(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM jobq_outbox").fetchone()[0])


def start_relay(spawn: Callable[..., Proc], settings: Settings, dsn: str, *args: str) -> Proc:
    return spawn(["outbox", "relay", "--dsn", dsn, "--metrics-port", "0", *args],
                 process_env(settings), name="relay")


def stopped_totals(proc: Proc) -> dict[str, int]:
    """created / duplicate / failed from the relay's ``outbox.relay_stopped`` line."""
    (event,) = events(proc, "outbox.relay_stopped")
    return {k: int(event[k]) for k in ("created", "duplicate", "failed")}
