"""The transactional outbox: a job is written as a row in the caller's own database
transaction, and a relay moves committed rows into jobq. A job then exists if and only if the
transaction that asked for it committed, even when a process dies right after the commit (R27).

``jobq.contrib.outbox.schema`` (no dependencies) names the table and derives job ids;
``jobq.contrib.outbox.table`` is the table for SQLAlchemy apps; ``jobq.contrib.outbox.relay``
is the relay (psycopg), run by ``jobq outbox relay`` or Django's ``manage.py
jobq_outbox_relay``."""

from __future__ import annotations

from jobq.contrib.outbox.schema import DEFAULT_SOURCE, DEFAULT_TABLE, idempotency_key, row_job_id

__all__ = ["DEFAULT_SOURCE", "DEFAULT_TABLE", "idempotency_key", "row_job_id"]
