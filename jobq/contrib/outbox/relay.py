"""The outbox relay: moves committed outbox rows into jobq, a batch per transaction.

Each batch is one PostgreSQL transaction: lock up to ``batch`` rows with ``SELECT ... FOR UPDATE
SKIP LOCKED`` (so relays running at once take different rows and never wait on each other),
enqueue them with the row id as idempotency key, delete them, commit. A relay that dies after
the enqueue and before the commit leaves its rows in place, unlocked; the next batch (of any
relay) sends them again, and jobq answers each as a duplicate of the job already made (R2): no
job is lost and none is made twice (R27). A row jobq refuses (unknown task, invalid payload) is
kept with its error and skipped from then on; clearing its ``error`` retries it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobq.contrib import missing_extra

try:
    import psycopg
    from psycopg import sql
except ModuleNotFoundError as exc:
    raise missing_extra(exc, "outbox") from exc

from jobq.client import EnqueueResult, JobRequest
from jobq.contrib.outbox.metrics import OutboxMetrics
from jobq.contrib.outbox.schema import DEFAULT_SOURCE, DEFAULT_TABLE, idempotency_key
from jobq.errors import JobqError
from jobq.logs import get_logger
from jobq.sync import SyncClient

log = get_logger("jobq.outbox")

BATCH = 500  # rows per transaction: large enough to amortise the round trips
POLL_S = 0.1  # wait when the outbox had fewer rows than a batch (the added latency's bound)
STATS_EVERY_S = 5.0  # how often pending rows and the oldest age are counted
RETRY_S = 0.5  # first wait after a failed batch (PostgreSQL or Redis away), doubled up to:
RETRY_MAX_S = 15.0

_SELECT = """SELECT id, task, payload, priority,
    greatest(0, delay_s - extract(epoch FROM clock_timestamp() - created_at))::float8
  FROM {table} WHERE error IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"""
_DELETE = "DELETE FROM {table} WHERE id = ANY(%s)"
_FAIL = "UPDATE {table} SET error = %s WHERE id = %s"
_STATS = """SELECT count(*) FILTER (WHERE error IS NULL),
    coalesce(extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE error IS NULL)),
             0)::float8,
    count(*) FILTER (WHERE error IS NOT NULL)
  FROM {table}"""


def table_name(name: str) -> sql.Composable:
    """``schema.table`` or ``table`` as a quoted identifier (never pasted into SQL as text)."""
    return sql.Identifier(*name.split("."))


@dataclass(frozen=True, slots=True)
class Moved:
    """What one batch did."""

    created: int = 0
    duplicate: int = 0
    failed: int = 0

    @property
    def rows(self) -> int:
        return self.created + self.duplicate + self.failed


class Relay:
    """Moves rows of one outbox table into jobq; any number may run against one table."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        client: SyncClient,
        *,
        table: str = DEFAULT_TABLE,
        source: str = DEFAULT_SOURCE,
        batch: int = BATCH,
        poll_s: float = POLL_S,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self.client = client
        self.source = source
        self.batch = batch
        self.poll_s = poll_s
        self.metrics = metrics or OutboxMetrics()
        name = table_name(table)
        self._select = sql.SQL(_SELECT).format(table=name)
        self._delete = sql.SQL(_DELETE).format(table=name)
        self._fail = sql.SQL(_FAIL).format(table=name)
        self._stats = sql.SQL(_STATS).format(table=name)
        self.last_beat = time.monotonic()
        self.total = Moved()  # since start, logged at stop

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._conn.autocommit = True  # each batch is an explicit transaction() block
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def relay_batch(self) -> Moved:
        """Move one batch in one transaction; raises (and moves nothing) when PostgreSQL or
        Redis fails, leaving the rows for the next try."""
        conn = self.connection()
        with conn.transaction(), conn.cursor() as cur:
            rows = cur.execute(self._select, (self.batch,)).fetchall()
            if not rows:
                return Moved()
            requests = [JobRequest(task, idempotency_key(row_id, self.source), payload,
                                   delay_s=delay_s, priority=priority)
                        for row_id, task, payload, priority, delay_s in rows]
            results = self.client.enqueue_many(requests)
            done = [row[0] for row, r in zip(rows, results, strict=True)
                    if isinstance(r, EnqueueResult)]
            refused = [(str(r), row[0]) for row, r in zip(rows, results, strict=True)
                       if isinstance(r, JobqError)]
            if done:
                cur.execute(self._delete, (done,))
            if refused:
                cur.executemany(self._fail, refused)
        duplicate = sum(1 for r in results if isinstance(r, EnqueueResult) and r.duplicate)
        moved = Moved(len(done) - duplicate, duplicate, len(refused))
        self.total = Moved(self.total.created + moved.created,
                           self.total.duplicate + moved.duplicate,
                           self.total.failed + moved.failed)
        for outcome, count in (("created", moved.created), ("duplicate", moved.duplicate),
                               ("failed", moved.failed)):
            if count:
                self.metrics.relayed.labels(outcome).inc(count)
        for error, row_id in refused:
            log.warning("outbox.row_refused", row=row_id, error=error)
        return moved

    def refresh_stats(self) -> None:
        """Count the rows waiting, the oldest one's age and the refused rows (for /metrics)."""
        row = self.connection().execute(self._stats).fetchone()
        assert row is not None
        pending, oldest, failed = row
        self.metrics.pending.set(pending)
        self.metrics.oldest_age.set(oldest)
        self.metrics.failed_rows.set(failed)

    def run(self, stop: threading.Event, *, until_empty: bool = False) -> None:
        """Relay until ``stop`` is set (SIGTERM) or, with ``until_empty``, until a batch finds
        no row it can take. A failed batch is retried after a growing wait."""
        next_stats = 0.0
        failures = 0
        while not stop.is_set():
            self.last_beat = time.monotonic()
            try:
                if self.last_beat >= next_stats:
                    self.refresh_stats()
                    next_stats = self.last_beat + STATS_EVERY_S
                moved = self.relay_batch()
            except Exception as exc:  # PostgreSQL or Redis away: the batch rolled back
                failures += 1
                wait_s = min(RETRY_MAX_S, RETRY_S * 2 ** min(failures - 1, 6))
                log.warning("outbox.batch_failed", error=f"{type(exc).__name__}: {exc}",
                            retryInS=wait_s)
                self.close()
                stop.wait(wait_s)
                continue
            failures = 0
            if moved.rows:
                log.debug("outbox.relayed", created=moved.created, duplicate=moved.duplicate,
                          failed=moved.failed)
            if moved.rows < self.batch:
                if until_empty and not moved.rows:
                    self.refresh_stats()
                    return
                stop.wait(self.poll_s)
