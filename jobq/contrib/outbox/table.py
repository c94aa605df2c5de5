"""The outbox as a SQLAlchemy table, for FastAPI (or any SQLAlchemy) apps, and the insert that
puts a job into it inside the caller's transaction.

Create it with ``outbox.create(engine)`` or your migrations (Alembic: ``op.create_table`` from
the same columns); the Django model of ``jobq.contrib.django`` has the same shape, so one relay
serves either."""

from __future__ import annotations

from typing import Any

from jobq.contrib import missing_extra

try:
    from sqlalchemy import (
        BigInteger,
        Column,
        DateTime,
        Double,
        Identity,
        MetaData,
        SmallInteger,
        String,
        Table,
        Text,
        func,
        insert,
    )
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session
except ModuleNotFoundError as exc:
    raise missing_extra(exc, "outbox") from exc

from jobq.contrib.outbox.schema import DEFAULT_SOURCE, DEFAULT_TABLE, TASK_MAX_CHARS, row_job_id
from jobq.flow import check_priority
from jobq.tasks import Registry

metadata = MetaData()

outbox = Table(
    DEFAULT_TABLE,
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("task", String(TASK_MAX_CHARS), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("priority", SmallInteger, nullable=True),
    Column("delay_s", Double, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("error", Text, nullable=True),
)


def enqueue_in_outbox(
    db: Session | Connection,
    registry: Registry,
    type: str,
    payload: dict[str, Any],
    *,
    priority: int | None = None,
    delay_s: float = 0.0,
    source: str = DEFAULT_SOURCE,
) -> str:
    """Write a job into the outbox in ``db``'s current transaction and return its job id. The
    payload is validated now (UnknownTask, InvalidPayload), so a bad one fails the request, not
    the relay."""
    task = registry.get(type)
    task.validate(payload)
    if priority is not None:
        check_priority(priority)
    row_id = db.execute(
        insert(outbox).values(task=type, payload=payload, priority=priority, delay_s=delay_s)
        .returning(outbox.c.id)
    ).scalar_one()
    return row_job_id(task.queue, int(row_id), source)
