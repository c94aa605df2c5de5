"""Request and response bodies of the HTTP API, named by use; the OpenAPI document is built
from these. Job records and DLQ entries are the core's own models (``jobq.jobs``).

Request bodies are validated strictly (``STRICT``): JSON has types, and a client that sends
``false`` or ``"5"`` for a number has a bug it should hear about, not a coerced job."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from jobq.jobs import Backoff
from jobq.keys import BATCH_MAX_JOBS, DEFAULT_PRIORITY, PRIORITY_MAX, PRIORITY_MIN

MAX_ATTEMPTS = 100  # more attempts than this is a mistake, not a policy
MAX_DELAY_S = 365 * 24 * 3600  # a job delayed by more than a year is a mistake too


def _unicode(value: str) -> str:
    """Refuse lone surrogates: JSON can spell them, but they cannot be stored or hashed."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]
IdempotencyKey = Annotated[Text, Field(
    min_length=1, max_length=1024,
    description="Repeats with this key return the same job. Idempotency is per queue: the "
                "same key for a task of another queue is another job; the same key with "
                "another type or payload on the same queue is a conflict (409).")]
STRICT = ConfigDict(extra="forbid", strict=True)


def _integral(value: object) -> object:
    """``3.0`` is the integer 3 in JSON (and JSON Schema); strict validation alone refuses it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An int that takes 3.0 and is strict otherwise (no bools, no strings). The bounds come before
# the validator, or the JSON schema would not call them minimum and maximum.
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS), BeforeValidator(_integral)]
Priority = Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX), BeforeValidator(_integral)]


class JobOptions(BaseModel):
    """Per-job overrides of the task's defaults."""

    model_config = STRICT

    attempts: Attempts | None = Field(
        None, description="Attempts before the DLQ (task default if unset)."
    )
    backoff: Backoff | None = Field(None, description="Delay between attempts (task default).")
    delaySeconds: float = Field(
        0, ge=0, le=MAX_DELAY_S, description="Seconds before the job becomes ready."
    )
    priority: Priority | None = Field(
        None, description=f"{PRIORITY_MIN}-{PRIORITY_MAX}, higher runs first; FIFO within one "
                    f"priority (task default if unset, else {DEFAULT_PRIORITY}).",
    )


class JobCreate(BaseModel):
    """``POST /jobs`` as the route parses it: any task type, any payload object, in one pass;
    the task then checks its payload. The OpenAPI document shows instead one body per task
    (``api.task_bodies``), each with the task's own payload model."""

    model_config = STRICT

    type: Text = Field(min_length=1, max_length=200, description="A registered task type.")
    idempotencyKey: IdempotencyKey
    payload: dict[str, Any] = Field(description="JSON object checked against the task's model.")
    options: JobOptions | None = None


class JobAccepted(BaseModel):
    """The job exists in Redis and will run (R1); ``duplicate`` says it existed already."""

    status: Literal["accepted"] = "accepted"
    jobId: str
    duplicate: bool


class ReplayRequest(BaseModel):
    """``POST /dlq/{dlqId}/replay``: an optional key that makes a repeated replay safe."""

    model_config = STRICT

    idempotencyKey: Text | None = Field(
        None, min_length=1, max_length=1024, description="Replays with this key yield one job."
    )


class ReplayAccepted(BaseModel):
    """The new job created from a DLQ entry, with its lineage (R7)."""

    status: Literal["accepted"] = "accepted"
    jobId: str
    replayedFromJobId: str
    dlqId: str


class QueueCounts(BaseModel):
    """Jobs per state in one queue."""

    queue: str
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int
    cancelled: int
    dlq: int
    limited: int = Field(0, description="Waiting or delayed jobs held back by a rate or a "
                         "concurrency limit (counted in waiting and delayed too).")
    paused: bool = Field(description="Workers claim nothing from a paused queue.")


class QueueList(BaseModel):
    """``GET /queues``: every queue this API knows, with its counts."""

    queues: list[QueueCounts]


class Health(BaseModel):
    """``GET /healthz`` and ``GET /readyz``."""

    status: Literal["ok", "ready"]


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. ``not_found``.")
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The one error shape of every non-2xx answer."""

    error: ErrorInfo


class JobBatchCreate(BaseModel):
    """``POST /jobs/batch``: the envelope is checked as a whole, each job on its own."""

    model_config = STRICT

    jobs: list[dict[str, Any]] = Field(
        min_length=1, max_length=BATCH_MAX_JOBS,
        description=f"At most {BATCH_MAX_JOBS} jobs, each a `POST /jobs` body (`JobCreate`); "
                    "a job that is not valid gets its own error in the answer, the others are "
                    "still created.")


class JobBatchItem(BaseModel):
    """One job of a batch, in request order: accepted (``jobId``, ``duplicate``) or refused
    with its own ``error`` (the error shape's object); ``httpStatus`` is what ``POST /jobs``
    would have answered for it alone."""

    status: Literal["accepted", "error"]
    httpStatus: int = Field(description="What `POST /jobs` would answer for this job alone.")
    jobId: str | None = None
    duplicate: bool | None = None
    error: ErrorInfo | None = None


class JobBatchAccepted(BaseModel):
    """Every job of the batch, in order, and how many were created, repeats or refused."""

    items: list[JobBatchItem]
    created: int
    duplicates: int
    errors: int
