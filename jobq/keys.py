"""Every Redis key name, and the default of every setting and job option, one per line.

All keys of one queue share the hash tag ``{queue}``, idempotency records included, so every
operation stays in one Redis Cluster slot and different queues can live on different primaries.
One key is outside any tag: the set of known queues (see docs/architecture.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
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
# Host names the API answers by default: loopback only, as `jobq dev` serves (IP addresses pass
# anyway); a deployment names its own (the chart: its Service and Ingress hosts).
API_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
HEARTBEAT_S = 5.0  # how often a worker reports itself and its in-flight jobs
HEARTBEAT_STALE_S = 30.0  # a heartbeat older than this belongs to a dead worker
RECLAIM_BATCH = 100  # most expired leases taken back per sweep (bounded script time)
HEARTBEAT_LATE_S = 3 * HEARTBEAT_S  # GET /workers marks a worker stale after three missed beats
PAUSED_RECHECK_S = 0.5  # a worker of a paused queue asks again this often (resume latency)
CANCEL_POLL_S = 0.25  # a worker reads its queues' cancel counters this often (cancel latency)
THROUGHPUT_WINDOW_MIN = 60  # minutes of per-queue throughput kept and shown
THROUGHPUT_TTL_S = (THROUGHPUT_WINDOW_MIN + 2) * 60  # a per-minute counter outlives the window
JOBS_PAGE_MAX = 500  # jobs per page of GET /queues/{queue}/jobs at most (one read per job)
BULK_REPLAY_MAX = 10_000  # DLQ entries one bulk replay touches at most (bounded request time)
BATCH_MAX_JOBS = 1000  # jobs one POST /jobs/batch may carry (422 above; bounded request time)
STATUS_WAIT_MAX_S = 30.0  # longest long poll of GET /jobs/{id}/status?wait= (longer is cut)
EVENTS_MAX_S = 300.0  # a GET /jobs/{id}/events stream ends after this; EventSource reconnects
EVENTS_HEARTBEAT_S = 15.0  # SSE comment this often, so proxies keep an idle stream open
EVENTS_MAXLEN = 1000  # per-queue job-event stream entries kept (about; one names <= 500 jobs)
PROGRESS_MESSAGE_MAX = 1000  # characters of a progress message kept (longer is cut)
EVENTS_BLOCK_MS = 5000  # one XREAD BLOCK of a per-queue event reader at most
EVENTS_KEEPALIVE_S = 5.0  # a reader renews its queue's event stream this often...
EVENTS_TTL_MS = 15_000  # ...which expires this long after (scripts write events while it exists)
PRIORITY_MIN = 0  # lowest job priority (runs last)
PRIORITY_MAX = 9  # highest job priority (runs first); one wait list per level
DEFAULT_PRIORITY = 5  # priority of a job whose task and request set none (lua/lib/waiting.lua)
FLOW_KEY_MAX = 200  # longest rate or concurrency key a task may compute (characters)
MAX_HANDBACKS = 3  # hand-backs a job gets free; each later one spends an attempt (R9 vs livelock)
CALL_RECORD_TTL_MS = 120_000  # a claim's record (R22) outlives any re-send and the lease (30 s)
RESERVE_RETRY_S = 10.0  # a side-effect reservation refused by an outage (a slot migrating, a
# failover) is sent again, with the same nonce, this long before the handler sees the error
DISCARD_TOMBSTONE_S = 300  # a discarded DLQ entry answers a re-sent discard as done this long
# A schedule's last-fired mark outlives the end of its bucket by this much: the mark only
# matters while its bucket is the current one, and the margin covers clock skew between the
# scheduler and Redis and a bucket end that a changed schedule moved later.
SCHEDULE_MARK_MARGIN_S = 24 * 3600


WORKFLOW_RETENTION_S = 7 * 24 * 3600  # every key of a workflow, after it ended (R24)
WORKFLOW_POLL_S = 0.05  # an idle worker's look at its queues' workflow outboxes (release lag)
# With the wake-up on, the finish that writes an outbox entry wakes a relay at once; the look
# is then only for what no token announces (the entries of a relay that died, leased again
# after 5 s), so it can be rarer: an idle relay makes about 5 Redis calls a second, not 20-40,
# and an idle one-queue worker uses 6-8 ms of CPU a second instead of 12-14 (INFO
# commandstats and /proc, measured ad hoc).
WORKFLOW_WAKE_LOOK_S = 1.0
ACK_TIMEOUT_S = 1.0  # how long a write waits for JOBQ_ACK_REPLICAS replicas before a 503
KNOWN_QUEUE_RESEND_S = 60.0  # a cluster process re-adds a queue to the known set this often

JOB_DIGEST_CHARS = 32  # hex characters of the key's digest that start every job id
_PLAIN_QUEUE = re.compile(r"^[A-Za-z0-9_.-]+$")  # names kept as they are in ids and key names
_ENCODED_MARK = "~"  # then the queue name follows base64url-encoded (never in a plain name)


def job_id_for(queue: str, idempotency_key: str) -> str:
    """Derive a URL-safe job id from an idempotency key (R2; never the raw key) that names its
    queue, so a job is found with one lookup in that queue's slot: ``<32 hex>-<queue>``, or
    ``<32 hex>-~<base64url of the queue>`` for names outside ``[A-Za-z0-9_.-]``.
    The digest has a fixed length, so the id splits unambiguously whatever the queue name.
    Every producer (enqueue, replay, batch, scheduler) makes its ids here."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:JOB_DIGEST_CHARS]
    return _join(digest, queue)


def queue_of_job_id(job_id: str) -> str | None:
    """The queue a job id names, or None for an id of the old format (32 hex characters, made
    before ids carried their queue) or one no jobq made."""
    digest, rest = job_id[:JOB_DIGEST_CHARS], job_id[JOB_DIGEST_CHARS:]
    if not _is_hex(digest) or not rest.startswith("-"):
        return None
    name = rest[1:]
    if not name.startswith(_ENCODED_MARK):
        return name if _PLAIN_QUEUE.match(name) else None
    encoded = name[1:]
    try:
        queue = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return queue if queue and _join(digest, queue) == job_id else None  # canonical form only


def _join(digest: str, queue: str) -> str:
    if _PLAIN_QUEUE.match(queue):
        return f"{digest}-{queue}"
    return f"{digest}-{_ENCODED_MARK}{_base64url(queue)}"


def _base64url(name: str) -> str:
    """A name in key-safe characters: base64url, no padding (never ``:``, ``{`` or ``}``)."""
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def flow_name(kind: str, name: str) -> str:
    """The part of a rate or concurrency key naming what it limits: ``<kind>:<name>`` for a name
    of ``[A-Za-z0-9_.-]``, else ``<kind>~<base64url of the name>``. Names come from payloads,
    so a name must never reach ``:`` into jobq's own key names: tenant ``t:parked`` would
    otherwise name tenant ``t``'s parked list (R21). Neither form holds a ``:`` after the kind."""
    if _PLAIN_QUEUE.match(name):
        return f"{kind}:{name}"
    return f"{kind}{_ENCODED_MARK}{_base64url(name)}"


def is_legacy_job_id(job_id: str) -> bool:
    """An id of the old format: 32 hex characters, no queue (still resolved by asking every
    queue, see docs/operations.md)."""
    return len(job_id) == JOB_DIGEST_CHARS and _is_hex(job_id)


def _is_hex(text: str) -> bool:
    return len(text) == JOB_DIGEST_CHARS and all(c in "0123456789abcdef" for c in text)


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
    def cancels(self) -> str:
        """Counter bumped by every cancel of a running job; workers holding leases in the queue
        read it every CANCEL_POLL_S and renew at once when it moved, to learn which job."""
        return f"{self.base}:cancels"

    @property
    def paused(self) -> str:
        """Present while the queue is paused: claim leases nothing (producers still enqueue)."""
        return f"{self.base}:paused"

    @property
    def throughput_prefix(self) -> str:
        """Per-minute hashes ``<prefix><minute since epoch>`` of completed/failed counts,
        written by the finishing scripts and expiring after THROUGHPUT_TTL_S."""
        return f"{self.base}:tp:"

    @property
    def events(self) -> str:
        """Stream of job events (terminal states, retries, starts, progress) the finishing
        scripts append to, capped at EVENTS_MAXLEN; the API's long polls and SSE read it."""
        return f"{self.base}:events"

    def wait_level(self, priority: int) -> str:
        """The wait list of one priority; the default priority's is ``wait`` itself."""
        return self.wait if priority == DEFAULT_PRIORITY else f"{self.wait}:{priority}"

    @property
    def levels(self) -> str:
        """Zset of the non-default priorities whose wait lists may hold jobs (score = level)."""
        return f"{self.base}:levels"

    @property
    def bell(self) -> str:
        """List present while a wait list may hold jobs: idle workers block on it."""
        return f"{self.base}:bell"

    @property
    def limited(self) -> str:
        """Count of delayed jobs held back by a rate limit (they wait in ``delayed``)."""
        return f"{self.base}:limited"

    @property
    def parked(self) -> str:
        """Count of jobs parked by a concurrency limit, waiting for a slot of their key."""
        return f"{self.base}:parked"

    @property
    def queue_rate(self) -> str:
        """The queue's start log (zset, score = start in ms) for its rate limit."""
        return f"{self.base}:rate"

    def rate_log(self, key: str) -> str:
        """The start log of one rate key (zset, score = start in ms); ``key`` from flow_name."""
        return f"{self.base}:rate:{key}"

    def concurrency(self, key: str) -> str:
        """The running set of one concurrency key; ``<this>:parked`` lists its parked jobs.
        ``key`` comes from flow_name, so no payload can make it end in ``:parked``."""
        return f"{self.base}:conc:{key}"

    def calls(self, caller: str) -> str:
        """The record of one caller's last claim or reclaim (R22): its sequence number and
        answer, so a second execution of the same call answers the same, and the jobs of an
        answer the caller never received go back in line. Expires after CALL_RECORD_TTL_MS."""
        return f"{self.base}:calls:{caller}"

    def throughput(self, minute: int) -> str:
        return f"{self.throughput_prefix}{minute}"

    def job(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    def idempotency(self, job_id: str) -> str:
        """The idempotency record of a job (R2): the fingerprint of the content first sent with
        its key. Inside the queue's tag, so idempotency is per queue: the same key on another
        queue is another job."""
        return f"{self.base}:idem:{job_id}"

    def schedule_mark(self, namespace: str, name: str) -> str:
        """Zset with one member, ``<namespace>/<name>``, whose score is the start (Unix seconds)
        of the newest bucket ``jobq scheduler`` enqueued for that schedule; written only after
        the enqueue answered, never lowered (``ZADD GT``), and expiring after the end of that
        bucket (SCHEDULE_MARK_MARGIN_S). Named by a digest of the pair, so no schedule name can
        reach another key or another schedule's mark."""
        identity = f"{len(namespace)}:{namespace}/{name}"  # the length keeps the split unique
        digest = hashlib.sha256(identity.encode()).hexdigest()[:JOB_DIGEST_CHARS]
        return f"{self.base}:sched:{digest}"

    def dlq_entry(self, dlq_id: str) -> str:
        return f"{self.dlq_prefix}{dlq_id}"

    def dlq_replays(self, dlq_id: str) -> str:
        return f"{self.dlq_prefix}{dlq_id}:replays"

    def dlq_tombstone(self, dlq_id: str) -> str:
        """Present DISCARD_TOMBSTONE_S after a discard: a re-sent discard answers done (R22)."""
        return f"{self.dlq_prefix}{dlq_id}:discarded"

    def side_effect(self, job_id: str, name: str) -> str:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        return f"{self.base}:fx:{job_id}:{digest}"


def known_queues(prefix: str) -> str:
    """The set of every queue a job was ever created in: readers find queues here, whatever
    task modules they loaded. Outside any queue's hash tag, so no script writes it."""
    return f"{prefix}:queues"


def legacy_idempotency_record(prefix: str, job_id: str) -> str:
    """Where idempotency records of old-format job ids were kept, outside any queue's tag: read
    only, so ``GET /jobs/{id}`` of such a job can still tell "expired" from "never existed"."""
    return f"{prefix}:idem:{job_id}"


def queue_of_dlq_id(dlq_id: str) -> str | None:
    """DLQ ids are ``<queue>-<n>``; the queue name is recovered from the id."""
    queue, sep, seq = dlq_id.rpartition("-")
    if not sep or not queue or not seq.isdigit():
        return None
    return queue
