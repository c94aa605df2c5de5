"""The outbox's shape, shared by the Django model, the SQLAlchemy table and the relay, and how a
row's job id derives from the row's id.

The table (PostgreSQL)::

    id          bigint identity primary key  -- the job's idempotency key: "<source>:<id>"
    task        varchar(200) not null        -- the jobq task type
    payload     jsonb not null
    priority    smallint null                -- 0-9; null: the task's
    delay_s     double precision not null default 0  -- counted from created_at
    created_at  timestamptz not null default now()   -- the transaction's start
    error       text null                    -- why the relay could not enqueue it (kept)

The idempotency key is the row id, so a relay that crashes after enqueueing and before deleting
re-sends the same job, which jobq answers as a duplicate. ``source`` tells apart two databases
whose outboxes feed one Redis; it must stay the same for a table, and a table's id sequence must
never be reset while jobq remembers its keys (``JOBQ_IDEMPOTENCY_RETENTION_S``)."""

from __future__ import annotations

from jobq import keys

DEFAULT_TABLE = "jobq_outbox"  # the Django model's db_table and the SQLAlchemy table's name
DEFAULT_SOURCE = "outbox"  # first part of every row's idempotency key
TASK_MAX_CHARS = 200  # length of the task column


def idempotency_key(row_id: int, source: str = DEFAULT_SOURCE) -> str:
    """The idempotency key of outbox row ``row_id``: ``outbox:42``."""
    return f"{source}:{row_id}"


def row_job_id(queue: str, row_id: int, source: str = DEFAULT_SOURCE) -> str:
    """The id the job of outbox row ``row_id`` has (before and after the relay moved it)."""
    return keys.job_id_for(queue, idempotency_key(row_id, source))
