"""The job model: states, backoff, and the record as Redis stores it and the API shows it."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from jobq.keys import BACKOFF_DELAY_S, DEFAULT_PRIORITY
from jobq.models import DeferredModel


class State(StrEnum):
    """Job states; the values are exactly what Redis holds and the API shows."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # terminal: cancelled on request, never a failure (no DLQ entry)


class Backoff(BaseModel):
    """How long a failed attempt waits before the next one (R5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fixed", "exponential"] = "fixed"
    delaySeconds: float = Field(BACKOFF_DELAY_S, ge=0, le=86400)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after failed attempt number ``attempt`` (1-based); exponential gets full jitter
        over its upper half so a retry storm spreads out instead of returning in lockstep."""
        if self.type == "fixed":
            return self.delaySeconds
        ceiling = min(self.delaySeconds * 2.0 ** (attempt - 1), 86400.0)
        jitter: float = (rng or random).random()
        return ceiling / 2 + jitter * ceiling / 2


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def iso(ms: int | str | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds, the API's time format."""
    if ms is None or ms == "":
        return None
    moment = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)


def fingerprint(task_type: str, payload: dict[str, Any]) -> str:
    """What makes two submissions with one idempotency key "the same" (R2): type and payload."""
    canonical = orjson.dumps([task_type, payload], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(value)


def _json(value: str | None) -> Any:
    return None if value is None or value == "" else loads(value)


TERMINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})


def _progress(raw: dict[str, str]) -> Progress | None:
    if not raw.get("progress"):
        return None
    return Progress(fraction=float(raw["progress"]), message=raw.get("progressMessage") or None,
                    updatedAt=iso(raw.get("progressAt")))


class HistoryEntry(DeferredModel):
    """One attempt of a job."""

    attempt: int
    startedAt: str | None
    finishedAt: str | None
    worker: str | None
    outcome: str | None  # completed | failed | lost | timeout | cancelled | handed-back | None
    error: str | None
    handedBack: bool = False  # given back on shutdown: no attempt spent, the job ran again


class Progress(DeferredModel):
    """What the handler last reported with ``ctx.progress`` (of any attempt)."""

    fraction: float = Field(ge=0, le=1)
    message: str | None
    updatedAt: str | None


class JobStatus(DeferredModel):
    """The seed's status view of a job (``GET /jobs/{id}/status``), with its progress."""

    jobId: str
    type: str
    queue: str
    state: State
    attempts: int
    maxAttempts: int
    createdAt: str | None
    processedAt: str | None
    finishedAt: str | None
    failedReason: str | None
    progress: Progress | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job has finished for good (nothing more will happen to it)."""
        return self.state in TERMINAL


class JobPublic(JobStatus):
    """The full record of a job (``GET /jobs/{id}``)."""

    idempotencyKey: str | None
    payload: dict[str, Any]
    backoff: Backoff
    result: Any = None
    history: list[HistoryEntry]
    deadLetterId: str | None
    replayedFromJobId: str | None
    replayedAt: str | None
    dlqId: str | None
    cancelRequestedAt: str | None = None
    priority: int = Field(DEFAULT_PRIORITY, description="0-9: higher runs first.")
    limitedBy: Literal["rate", "concurrency"] | None = Field(
        None, description="Held back by a rate or a concurrency limit of its task or queue.")


def _limited_by(raw: dict[str, str]) -> Literal["rate", "concurrency"] | None:
    """Why a job that waits is held back (lua/lib/limits.lua): parked on its concurrency key,
    or delayed by a rate limit (its readyAt is then when the window allows it)."""
    held = raw.get("heldBy")
    if held == "rate" and raw.get("state") == "delayed":
        return "rate"
    if held == "concurrency" and raw.get("state") == "waiting":
        return "concurrency"
    return None


def job_from_hash(raw: dict[str, str]) -> JobPublic:
    """Turn the Redis hash of a job into its public record."""
    attempts = int(raw.get("attempts") or 0)
    return _job(raw, attempts, _history(raw, attempts))


def _history(raw: dict[str, str], attempts: int) -> list[HistoryEntry]:
    """The attempts ``h:1..attempts`` and the hand-backs ``b:1..handbacks`` in the order they
    ran: a hand-back held the attempt number its job's next run took again."""
    runs = [(n, _json(raw.get(f"h:{n}"))) for n in range(1, attempts + 1)]
    for n in range(1, int(raw.get("handbacks") or 0) + 1):
        entry = _json(raw.get(f"b:{n}"))
        runs.append((int(entry.get("attempt", 0)) if entry else 0, entry))
    history = [
        HistoryEntry(
            attempt=attempt,
            startedAt=iso(entry.get("start")),
            finishedAt=iso(entry.get("end")),
            worker=entry.get("worker"),
            outcome="handed-back" if entry.get("handedBack") else entry.get("outcome"),
            error=entry.get("error"),
            handedBack=bool(entry.get("handedBack")),
        )
        for attempt, entry in runs
        if entry is not None
    ]
    return sorted(history, key=lambda h: (h.startedAt or "", not h.handedBack))


def _job(raw: dict[str, str], attempts: int, history: list[HistoryEntry]) -> JobPublic:
    return JobPublic(
        jobId=raw["id"],
        type=raw["type"],
        queue=raw["queue"],
        state=State(raw["state"]),
        attempts=attempts,
        maxAttempts=int(raw["maxAttempts"]),
        createdAt=iso(raw.get("createdAt")),
        processedAt=iso(raw.get("processedAt")),
        finishedAt=iso(raw.get("finishedAt")),
        failedReason=raw.get("failedReason") or None,
        progress=_progress(raw),
        idempotencyKey=raw.get("key") or None,
        payload=_json(raw.get("payload")) or {},
        backoff=Backoff.model_validate_json(raw.get("backoff") or "{}"),
        result=_json(raw.get("result")),
        history=history,
        deadLetterId=raw.get("deadLetterId") or None,
        replayedFromJobId=raw.get("replayedFromJobId") or None,
        replayedAt=iso(_int(raw.get("replayedAt"))),
        dlqId=raw.get("dlqId") or None,
        cancelRequestedAt=iso(_int(raw.get("cancelRequested"))),
        priority=int(raw.get("priority") or DEFAULT_PRIORITY),
        limitedBy=_limited_by(raw),
    )


def status_of(job: JobPublic) -> JobStatus:
    return JobStatus.model_validate(job.model_dump(include=set(JobStatus.model_fields)))


class Replay(DeferredModel):
    jobId: str
    replayedAt: str | None


class DlqEntry(DeferredModel):
    """A dead-lettered job as it was when its last attempt failed (R6), plus its replays (R7)."""

    dlqId: str
    originalJobId: str
    type: str
    queue: str
    payload: dict[str, Any]
    failedReason: str | None
    attempts: int
    failedAt: str | None
    replays: list[Replay]


class DlqPage(DeferredModel):
    """DLQ entries newest first (``GET /dlq``); pass ``nextCursor`` back for the next page."""

    items: list[DlqEntry]
    nextCursor: str | None


def dlq_entry_from_hash(raw: dict[str, str], replays: list[str]) -> DlqEntry:
    return DlqEntry(
        dlqId=raw["dlqId"],
        originalJobId=raw["originalJobId"],
        type=raw["type"],
        queue=raw["queue"],
        payload=_json(raw.get("payload")) or {},
        failedReason=raw.get("failedReason") or None,
        attempts=int(raw.get("attempts") or 0),
        failedAt=iso(raw.get("failedAt")),
        replays=[
            Replay(jobId=r["jobId"], replayedAt=iso(r.get("replayedAt")))
            for r in map(loads, replays)
        ],
    )
