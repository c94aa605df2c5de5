"""Every Redis key name, and the default of every setting and job option, one per line.

All keys of one queue share the hash tag ``{queue}`` so a Redis Cluster could keep each queue
on its own node. Two are outside any queue's tag: the idempotency records (a key must be unique
across queues, R2) and the set of known queues (see docs/architecture.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_PREFIX = "jobq"  # namespace of every key, so one Redis can hold other data too

IDEMPOTENCY_RETENTION_S = 7 * 24 * 3600  # idempotency keys (R2) and side-effect reservations (R8)
LEASE_S = 30.0  # lease length; a crashed worker's job is taken back this long after (R4)
SHUTDOWN_GRACE_S = 25.0  # below the chart's terminationGracePeriodSeconds (35) (R9)
COMPLETED_KEEP = 1000  # completed job records kept per queue (R12)
COMPLETED_MAX_AGE_S = 24 * 3600  # completed job records older than this are dropped (R12)
FAILED_KEEP = 5000  # failed job records kept per queue; their DLQ entries stay (R12)
FAILED_MAX_AGE_S = 7 * 24 * 3600  # failed job records older than this are dropped (R12)
DLQ_MAX_AGE_S = 90 * 24 * 3600  # DLQ entries older than this are dropped; 0 keeps them forever
DEFAULT_ATTEMPTS = 3  # attempts of a task that declares none, before the DLQ (R5, R6)
BACKOFF_DELAY_S = 5.0  # fixed delay between attempts of a task that declares no backoff (R5)
MAX_BODY_BYTES = 1024 * 1024  # largest request body the API reads (413 above it)
HEARTBEAT_S = 5.0  # how often a worker reports itself and its in-flight jobs
HEARTBEAT_STALE_S = 30.0  # a heartbeat older than this belongs to a dead worker
RECLAIM_BATCH = 100  # most expired leases taken back per sweep (bounded script time)
HEARTBEAT_LATE_S = 3 * HEARTBEAT_S  # GET /workers marks a worker stale after three missed beats
PAUSED_RECHECK_S = 0.5  # a worker of a paused queue asks again this often (resume latency)
THROUGHPUT_WINDOW_MIN = 60  # minutes of per-queue throughput kept and shown
THROUGHPUT_TTL_S = (THROUGHPUT_WINDOW_MIN + 2) * 60  # a per-minute counter outlives the window
JOBS_PAGE_MAX = 500  # jobs per page of GET /queues/{queue}/jobs at most (one read per job)
BULK_REPLAY_MAX = 10_000  # DLQ entries one bulk replay touches at most (bounded request time)


def job_id_for(idempotency_key: str) -> str:
    """Derive a Redis-safe job id from an idempotency key (R2); never the raw key."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue."""

    prefix: str
    queue: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.queue}}}"

    @property
    def wait(self) -> str:
        return f"{self.base}:wait"

    @property
    def active(self) -> str:
        return f"{self.base}:active"

    @property
    def delayed(self) -> str:
        return f"{self.base}:delayed"

    @property
    def completed(self) -> str:
        return f"{self.base}:completed"

    @property
    def failed(self) -> str:
        return f"{self.base}:failed"

    @property
    def dlq(self) -> str:
        return f"{self.base}:dlq"

    @property
    def dlq_seq(self) -> str:
        return f"{self.base}:dlq-seq"

    @property
    def dlq_prefix(self) -> str:
        return f"{self.base}:dlq:"

    @property
    def job_prefix(self) -> str:
        return f"{self.base}:job:"

    @property
    def workers(self) -> str:
        """Hash of worker id -> JSON heartbeat (in-flight jobs, time)."""
        return f"{self.base}:workers"

    @property
    def cancelled(self) -> str:
        """Zset of cancelled jobs (score = finishedAt, ms), trimmed like completed ones."""
        return f"{self.base}:cancelled"

    @property
    def paused(self) -> str:
        """Present while the queue is paused: claim leases nothing (producers still enqueue)."""
        return f"{self.base}:paused"

    @property
    def throughput_prefix(self) -> str:
        """Per-minute hashes ``<prefix><minute since epoch>`` of completed/failed counts,
        written by the finishing scripts and expiring after THROUGHPUT_TTL_S."""
        return f"{self.base}:tp:"

    def throughput(self, minute: int) -> str:
        return f"{self.throughput_prefix}{minute}"

    def job(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    def dlq_entry(self, dlq_id: str) -> str:
        return f"{self.dlq_prefix}{dlq_id}"

    def dlq_replays(self, dlq_id: str) -> str:
        return f"{self.dlq_prefix}{dlq_id}:replays"

    def side_effect(self, job_id: str, name: str) -> str:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        return f"{self.base}:fx:{job_id}:{digest}"


def known_queues(prefix: str) -> str:
    """The set of every queue a job was ever created in: readers find queues here, whatever
    task modules they loaded. Outside any queue's hash tag, so no script writes it."""
    return f"{prefix}:queues"


def idempotency_record(prefix: str, job_id: str) -> str:
    """The Redis key of an idempotency record: the fingerprint of the content first sent with
    the idempotency key that ``job_id`` was derived from (R2)."""
    return f"{prefix}:idem:{job_id}"


def queue_of_dlq_id(dlq_id: str) -> str | None:
    """DLQ ids are ``<queue>-<n>``; the queue name is recovered from the id."""
    queue, sep, seq = dlq_id.rpartition("-")
    if not sep or not queue or not seq.isdigit():
        return None
    return queue
