"""The Lua scripts, loaded once per connection, with one typed method each.

Every state change touching more than one key is one script (``lua/<name>.lua``). Pieces that
several scripts need (Redis's clock, the answer codes, the idempotency check, storing a new job,
ending an attempt, trimming finished jobs) live once in ``lua/lib/<piece>.lua`` and are inlined
where a script says ``--- @include "lib/<piece>"``, so the scripts cannot drift apart. Scripts
answer failures with small negative integers; ``_raise_for`` maps them to exceptions in one place.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from jobq.connection import REDIS_DOWN, NotReplicated, Redis
from jobq.errors import (
    IdempotencyConflict,
    JobFinished,
    JobqError,
    LeaseLost,
    NotFound,
    QueuePaused,
)
from jobq.keys import (
    ACK_TIMEOUT_S,
    DEFAULT_PRIORITY,
    DISCARD_TOMBSTONE_S,
    FAILED_KEEP,
    FAILED_MAX_AGE_S,
    KNOWN_QUEUE_RESEND_S,
    MAX_HANDBACKS,
    QueueKeys,
    known_queues,
)
from jobq.logs import get_logger
from jobq.transport import Transport

log = get_logger("jobq.scripts")

# The answers of lua/lib/codes.lua, same names and values (tests/test_scripts.py compares them).
CREATED = 0
DUPLICATE = 1
DONE = 1
SKIPPED = 0
LEASE_LOST = -1
CONFLICT = -2
NOT_FOUND = -3
ENQUEUE_CHUNK = 500  # most jobs per enqueue_batch call: bounds the time one script holds Redis
PAUSED = -4
CANCEL_REQUESTED = 2
FINISHED = -5
CALL_STALE = -6

_ERRORS: dict[int, type[JobqError]] = {
    LEASE_LOST: LeaseLost,
    CONFLICT: IdempotencyConflict,
    NOT_FOUND: NotFound,
    PAUSED: QueuePaused,
    FINISHED: JobFinished,
}
FAIL_RETRY, FAIL_DEAD_LETTERED, FAIL_CANCELLED = 1, 2, 3  # the first value of fail's answer
_HEADER_KEY = re.compile(r"^\s*KEYS\[(\d+)\]", re.MULTILINE)
_HEADER_MORE_KEYS = re.compile(r"^\s*KEYS\[\d+\.\.\]", re.MULTILINE)  # "KEYS[3..] per job: ..."
_INCLUDE = re.compile(r'^--- @include "(lib/[a-z_]+)"\n', re.MULTILINE)
_ANY_INCLUDE = re.compile(r"^-+\s*@include", re.MULTILINE)
SCRIPT_NAMES = (
    "enqueue", "claim", "renew", "complete", "fail", "reclaim", "handback", "reserve", "replay",
    "cancel", "end_cancelled", "discard", "throughput", "enqueue_batch", "progress",
    "complete_claim", "put_back",
    # Workflows (jobq/workflows/scripts.py has their typed methods).
    "wf_create", "wf_apply", "wf_ack", "wf_release", "wf_take", "wf_inputs", "wf_intent_done",
    "wf_apply_many",
    "wf_create_chunk",  # large workflows: chunked creation, sealed by the last chunk
    "wf_add_nodes",  # nodes a running node adds to its own workflow
    "wf_reopen",
)


def lua_file(path: str) -> str:
    """One file under ``jobq/lua/`` as written, e.g. ``claim.lua`` or ``lib/clock.lua``."""
    return resources.files("jobq").joinpath("lua", path).read_text()


@functools.cache
def script_source(name: str) -> str:
    """The script as Redis runs it: ``lua/<name>.lua`` with its pieces inlined."""
    return inline_includes(f"{name}.lua", lua_file)


def inline_includes(path: str, read: Callable[[str], str]) -> str:
    """``read(path)`` with each ``--- @include "lib/x"`` line replaced by ``read("lib/x.lua")``.
    A piece is inlined once, at its first include (a piece may include the pieces it needs), so
    the result reads top to bottom like one file. Any other ``@include`` line is an error."""
    inlined: set[str] = set()

    def inline(match: re.Match[str]) -> str:
        piece = match.group(1)
        if piece in inlined:
            return ""
        inlined.add(piece)
        text = read(f"{piece}.lua")
        return _INCLUDE.sub(inline, text if text.endswith("\n") else text + "\n")

    source = _INCLUDE.sub(inline, read(path))
    if _ANY_INCLUDE.search(source):
        raise JobqError(f"{path}: malformed include (write: --- @include \"lib/<piece>\")")
    return source


def header_key_count(source: str) -> int:
    """How many KEYS the script's header comment declares (before any ``KEYS[n..]`` line)."""
    header = source.split("]]", 1)[0]
    return len(_HEADER_KEY.findall(header))


def header_takes_more_keys(source: str) -> bool:
    """Whether the header ends its KEYS with ``KEYS[n..]``: per-item keys after the fixed ones."""
    return bool(_HEADER_MORE_KEYS.search(source.split("]]", 1)[0]))


def _known(q: QueueKeys) -> tuple[str, ...]:
    """Add the queue to the set of known queues, which readers list instead of the queues of
    the task modules they happen to load. Sent ahead of the script that creates the job, not
    inside it: the set has no queue's hash tag. Adding a known member changes nothing."""
    return ("SADD", known_queues(q.prefix), q.queue)


def new_nonce() -> str:
    """A call's nonce, for a caller that sends the same call again itself (R22)."""
    return _nonce()


def _nonce() -> str:
    """A call's nonce: the scripts recognise their own earlier execution by it (R22)."""
    return secrets.token_hex(8)


def _raise_for(code: int, what: str) -> None:
    error = _ERRORS.get(code)
    if error is not None:
        raise error(what)
    if code < 0:
        raise JobqError(f"{what}: unexpected script answer {code}")


@dataclass(frozen=True, slots=True)
class NewJob:
    """What enqueue and replay store of a new job, in the scripts' ARGV order (the ``job``
    fields of ``lua/lib/new_job.lua``)."""

    type: str
    queue: str
    payload_json: str
    idempotency_key: str
    max_attempts: int
    backoff_json: str
    timeout_s: float | None
    priority: int = DEFAULT_PRIORITY
    rate_key: str = ""  # the full Redis key of the job's rate log ("" = no rate limit)
    rate_max: int = 0
    rate_per_ms: int = 0
    concurrency_key: str = ""  # the full Redis key of its running set ("" = no limit)
    concurrency_max: int = 0
    trace_context: str = ""  # the creation context's carrier (jobq.tracing.carrier; "" = none)

    def args(self) -> list[str | int]:
        timeout = "" if self.timeout_s is None else str(self.timeout_s)
        return [self.type, self.queue, self.payload_json, self.idempotency_key,
                self.max_attempts, self.backoff_json, timeout, self.priority,
                self.rate_key, self.rate_max, self.rate_per_ms,
                self.concurrency_key, self.concurrency_max, self.trace_context]


@dataclass(frozen=True, slots=True)
class BatchJob:
    """One job of ``enqueue_batch``: its keys' names, id, fingerprint and delay, and the job."""

    idem_record: str
    job_id: str
    fingerprint: str
    delay_ms: int
    job: NewJob


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job leased to this worker by ``claim``."""

    job_id: str
    token: str
    type: str
    payload: str
    attempt: int
    max_attempts: int
    backoff: str
    ready_at_ms: int
    timeout_s: float | None


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    """What one ``claim`` call did: Redis's clock, when to look again, the jobs leased and
    how many it held back by a rate or a concurrency limit."""

    now_ms: int
    next_due_ms: int | None  # the next delayed or rate-limited job, or the rate window
    jobs: list[Claimed]
    held_rate: int = 0
    held_concurrency: int = 0
    throttled: bool = False  # jobs wait, but the queue's rate limit allows none until next_due


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """A job whose lease expired, now held by the sweeper to end the lost attempt."""

    job_id: str
    token: str
    previous_worker: str
    attempt: int
    max_attempts: int
    backoff: str
    type: str


@dataclass(frozen=True, slots=True)
class FailResult:
    """Where a failed attempt sent its job: ``retry_at_ms`` or ``dlq_id`` is set."""

    retry_at_ms: int | None = None
    dlq_id: str | None = None
    cancelled: bool = False  # its cancel was requested while it ran: it ended cancelled (R23)


def _claim_answer(raw: Any, queue: str) -> ClaimAnswer:
    """Parse claim's answer (see ``lua/lib/claim_jobs.lua``); raises QueuePaused."""
    if isinstance(raw, int):
        if raw == CALL_STALE:
            raise JobqError(f"claim on queue {queue}: a stale copy of an earlier call")
        _raise_for(raw, f"queue {queue} is paused")
    next_due = int(raw[1])
    jobs = [
        Claimed(
            job_id=raw[i], token=raw[i + 1], type=raw[i + 2], payload=raw[i + 3],
            attempt=int(raw[i + 4]), max_attempts=int(raw[i + 5]), backoff=raw[i + 6],
            ready_at_ms=int(raw[i + 7]), timeout_s=float(raw[i + 8]) if raw[i + 8] else None,
        )
        for i in range(5, len(raw), 9)
    ]
    return ClaimAnswer(int(raw[0]), None if next_due < 0 else next_due, jobs,
                       int(raw[2]), int(raw[3]), raw[4] == 1)


class Scripts:
    """The scripts bound to one Redis client (one server, or a cluster).

    With ``ack_replicas`` > 0, each write that must not be lost (``durable`` below) is followed,
    on the same connection, by ``WAIT ack_replicas timeout``: the call returns once that many
    replicas hold it, and raises NotReplicated (producers) or logs (workers) when they do not.
    """

    def __init__(
        self, redis: Redis, *, ack_replicas: int = 0, ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.ack_replicas = ack_replicas
        self._ack_timeout_ms = max(1, int(ack_timeout_s * 1000))
        self._scripts: dict[str, AsyncScript] = {}
        self._key_counts: dict[str, int] = {}
        self._more_keys: set[str] = set()
        self._transport = Transport(redis)
        self._known_sent: dict[str, float] = {}  # cluster: queue -> when SADD last succeeded
        # Claims and reclaims are recorded per caller (lua/lib/calls.lua, R22): this object's
        # callers have their own records, [last sequence number sent, last one answered].
        self._instance = secrets.token_hex(4)
        self._calls: dict[str, list[int]] = {}
        for name in SCRIPT_NAMES:
            source = script_source(name)
            self._scripts[name] = redis.register_script(source)  # type: ignore[misc]
            self._key_counts[name] = header_key_count(source)
            if header_takes_more_keys(source):
                self._more_keys.add(name)

    async def load(self) -> None:
        """Load every script into Redis once, so calls go by SHA (reloaded on NOSCRIPT).

        One round trip when they are there already (another process loaded them: the usual
        case at a worker's start), and one more for those that are not."""
        scripts = list(self._scripts.values())
        if self.cluster:  # loaded on every primary by redis-py, one script at a time
            for script in scripts:
                await self.redis.script_load(script.script)
            return
        present = await self.redis.script_exists(*(script.sha for script in scripts))
        missing = [script for script, there in zip(scripts, present, strict=True) if not there]
        if missing:
            async with self.redis.pipeline(transaction=False) as pipe:
                for script in missing:
                    pipe.script_load(script.script)
                await pipe.execute()

    async def _call(
        self, name: str, keys: list[str], args: list[Any], *, first: tuple[Any, ...] = (),
        durable: bool = False,
    ) -> Any:
        """Run a script by SHA; ``first`` is one plain command sent ahead of it in the same
        round trip (not atomic with the script; on a cluster sent on its own, see
        ``_ensure_known``). ``durable``: wait for ``ack_replicas`` replicas (NotReplicated)."""
        fixed = self._key_counts[name]
        if len(keys) != fixed and not (name in self._more_keys and len(keys) > fixed):
            raise JobqError(f"{name}: passes {len(keys)} keys, header declares "
                            f"{self._key_counts[name]}")
        script = self._scripts[name]
        if first and self.cluster:
            await self._ensure_known(first)
            first = ()
        commands = [c for c in (first, ("EVALSHA", script.sha, len(keys), *keys, *args)) if c]
        if durable and self.ack_replicas:
            commands.append(("WAIT", self.ack_replicas, self._ack_timeout_ms))
        try:
            answers = await self._transport.send(commands, keys[0])
        except NoScriptError:  # Redis restarted or flushed its script cache: load, try again
            await self._load_where(script, keys[0])
            answers = await self._transport.send(commands, keys[0])
        if durable and self.ack_replicas:
            acked = int(answers[-1])
            if acked < self.ack_replicas:
                raise NotReplicated(
                    f"{name}: {acked} of {self.ack_replicas} replicas confirmed the write "
                    f"within {self._ack_timeout_ms} ms", answer=answers[-2])
            return answers[-2]
        return answers[-1]

    async def call(
        self, name: str, keys: list[str], args: list[Any], *, durable: bool = False,
    ) -> Any:
        """``_call`` for the typed methods that live beside their feature (jobq/workflows)."""
        return await self._call(name, keys, args, durable=durable)

    async def _call_worker_write(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A worker's durable write: when the replicas do not confirm it in time, the write
        stands on the primary (it cannot be taken back, and sending it again would be refused
        as a lost lease), so it is logged and its answer used."""
        try:
            return await self._call(name, keys, args, durable=True)
        except NotReplicated as exc:
            log.warning("redis.write_not_replicated", script=name, key=keys[0], error=str(exc))
            return exc.answer

    def _call_record(self, q: QueueKeys, caller: str) -> tuple[str, int, int]:
        """The caller's record key, this call's sequence number and the last one answered.
        One caller's calls are sequential (a lane's claim loop, a sweeper)."""
        key = q.calls(f"{caller}:{self._instance}")
        sent = self._calls.setdefault(key, [0, 0])
        sent[0] += 1
        return key, sent[0], sent[1]

    def _answered(self, record: str, seq: int) -> None:
        self._calls[record][1] = max(self._calls[record][1], seq)

    async def _load_where(self, script: AsyncScript, key: str) -> None:
        """Load a script into the server holding ``key`` (on a cluster: that slot's primary,
        e.g. a replica just promoted that never saw SCRIPT LOAD)."""
        if self.cluster:
            assert isinstance(self.redis, RedisCluster)
            await self.redis.execute_command("SCRIPT LOAD", script.script,
                                             target_nodes=self._transport.node_for(key))
        else:
            await self.redis.script_load(script.script)

    async def _ensure_known(self, command: tuple[Any, ...]) -> None:
        """Cluster mode: the known-queues set has no queue's tag, so its SADD goes as its own
        command, once per queue per process every KNOWN_QUEUE_RESEND_S (re-sent now and then,
        so a set lost with its node comes back), not once per job."""
        queue = str(command[2])
        now = time.monotonic()
        if now - self._known_sent.get(queue, -KNOWN_QUEUE_RESEND_S) < KNOWN_QUEUE_RESEND_S:
            return
        try:
            await self.redis.execute_command(*command)
        except REDIS_DOWN as exc:
            # The set lives in one slot, maybe on a node that is down: that must not stop
            # every queue's producers. Tried again with the queue's next job.
            log.warning("redis.known_queue_not_recorded", queue=queue, error=str(exc))
            return
        self._known_sent[queue] = now

    async def enqueue(
        self, q: QueueKeys, idem_record: str, job_id: str, fingerprint: str, retention_s: int,
        delay_ms: int, job: NewJob,
    ) -> bool:
        """Create the job unless its key is known; True when it was a duplicate."""
        code = await self._call(
            "enqueue", [idem_record, q.job(job_id), q.wait, q.delayed],
            [job_id, fingerprint, retention_s, delay_ms, *job.args(), _nonce()], first=_known(q),
            durable=True,
        )
        _raise_for(code, f"idempotency key of job {job_id} was used with other content")
        return bool(code == DUPLICATE)

    async def enqueue_batch(
        self, q: QueueKeys, retention_s: int, jobs: list[BatchJob],
    ) -> list[int]:
        """Create many jobs of one queue, ``ENQUEUE_CHUNK`` per script call, all the calls in
        one round trip; per job CREATED, DUPLICATE or CONFLICT, in order."""
        known = _known(q)
        calls: list[tuple[Any, ...]] = []
        if self.cluster:
            await self._ensure_known(known)
        else:
            calls.append(known)
        script = self._scripts["enqueue_batch"]
        nonce = _nonce()
        for start in range(0, len(jobs), ENQUEUE_CHUNK):
            chunk = jobs[start:start + ENQUEUE_CHUNK]
            batch_keys: list[str] = [q.wait, q.delayed]
            args: list[Any] = [retention_s, f"{nonce}:{start}"]
            for job in chunk:
                batch_keys += (job.idem_record, q.job(job.job_id))
                args += (job.job_id, job.fingerprint, job.delay_ms, *job.job.args())
            calls.append(("EVALSHA", script.sha, len(batch_keys), *batch_keys, *args))
        scripted = len(calls) - (0 if self.cluster else 1)
        if self.ack_replicas:
            calls.append(("WAIT", self.ack_replicas, self._ack_timeout_ms))
        try:
            answers = await self._transport.send(calls, q.wait)
        except NoScriptError:  # every call is the same script: none of them ran
            await self._load_where(script, q.wait)
            answers = await self._transport.send(calls, q.wait)
        if self.ack_replicas:
            acked = int(answers.pop())
            if acked < self.ack_replicas:
                raise NotReplicated(
                    f"enqueue_batch: {acked} of {self.ack_replicas} replicas confirmed the "
                    f"write within {self._ack_timeout_ms} ms", answer=answers)
        answers = answers[len(answers) - scripted:]
        return [int(code) for answer in answers for code in answer]

    async def claim(
        self, q: QueueKeys, most: int, lease_ms: int, worker: str
    ) -> tuple[int, int | None, list[Claimed]]:
        """Lease up to ``most`` jobs: Redis's clock (ms), when the next delayed job falls due
        and the jobs (see ``claim_answer``). Raises QueuePaused while the queue is paused."""
        answer = await self.claim_answer(q, most, lease_ms, worker)
        return answer.now_ms, answer.next_due_ms, answer.jobs

    async def claim_answer(
        self, q: QueueKeys, most: int, lease_ms: int, worker: str,
        rate: tuple[int, int] = (0, 0), caller: str | None = None,
    ) -> ClaimAnswer:
        """Lease up to ``most`` jobs, highest priority first, under the queue's ``rate``
        (most starts, period in ms; (0, 0) = none) and each job's own limits. Times are on
        Redis's clock. Raises QueuePaused while the queue is paused. ``caller`` (default: the
        worker) names a sequence of calls made one after another, e.g. one lane's: a call
        whose answer was lost hands its jobs back at that caller's next call."""
        record, seq, answered = self._call_record(q, caller or worker)
        raw = await self._call(
            "claim", [q.wait, q.active, q.delayed, q.job_prefix, q.paused, q.events, record],
            [most, lease_ms, worker, rate[0], rate[1], seq, answered],
        )
        self._answered(record, seq)
        return _claim_answer(raw, q.queue)

    async def renew(
        self, q: QueueKeys, lease_ms: int, leases: list[tuple[str, str]]
    ) -> list[int]:
        """Extend leases by ``lease_ms`` from now; per lease DONE, CANCEL_REQUESTED (renewed,
        and the job was asked to cancel) or LEASE_LOST."""
        flat = [x for pair in leases for x in pair]
        raw = await self._call("renew", [q.active, q.job_prefix], [lease_ms, *flat])
        return [int(r) for r in raw]

    async def complete(
        self, q: QueueKeys, keep: int, max_age_ms: int, done: list[tuple[str, str, str]],
    ) -> list[bool]:
        """Complete jobs (id, token, result JSON); False for each refused for a lost lease."""
        flat = [x for triple in done for x in triple]
        raw = await self._call_worker_write(
            "complete", [q.active, q.completed, q.job_prefix, q.throughput_prefix, q.events],
            [keep, max_age_ms, *flat],
        )
        return [r == DONE for r in raw]

    async def complete_and_claim(
        self, q: QueueKeys, keep: int, max_age_ms: int, done: list[tuple[str, str, str]],
        most: int, lease_ms: int, worker: str, rate: tuple[int, int] = (0, 0),
        caller: str | None = None,
    ) -> tuple[list[bool], ClaimAnswer | None]:
        """``complete`` then ``claim_answer`` in one script call (one round trip per job):
        the completions' answers, and the claim's (None while the queue is paused: the
        completions are written all the same)."""
        flat = [x for triple in done for x in triple]
        record, seq, answered = self._call_record(q, caller or worker)
        raw = await self._call_worker_write(
            "complete_claim",
            [q.wait, q.active, q.delayed, q.job_prefix, q.paused, q.events, q.completed,
             q.throughput_prefix, record],
            [most, lease_ms, worker, rate[0], rate[1], keep, max_age_ms, seq, answered, *flat],
        )
        if raw == CALL_STALE:
            raise JobqError(f"complete_claim on queue {q.queue}: a stale copy of an earlier call")
        self._answered(record, seq)
        count = int(raw[0])
        completed = [r == DONE for r in raw[1:1 + count]]
        rest = raw[1 + count:]
        if len(rest) == 1 and int(rest[0]) == PAUSED:
            return completed, None
        return completed, _claim_answer(rest, q.queue)

    async def fail(
        self, q: QueueKeys, job_id: str, token: str, reason: str, delay_ms: int,
        *, permanent: bool, outcome: str, keep: int, max_age_ms: int, dlq_max_age_ms: int = 0,
    ) -> FailResult:
        """End a failed attempt: retry after ``delay_ms`` or dead-letter; a job whose cancel
        was requested ends cancelled instead (R23). Raises LeaseLost."""
        raw = await self._call_worker_write(
            "fail",
            [q.active, q.delayed, q.failed, q.dlq, q.dlq_seq, q.job_prefix, q.dlq_prefix,
             q.throughput_prefix, q.events, q.cancelled],
            [job_id, token, reason, delay_ms, int(permanent), outcome, q.queue, keep, max_age_ms,
             dlq_max_age_ms],
        )
        if isinstance(raw, int):
            _raise_for(raw, f"lease on job {job_id} was lost")
        if int(raw[0]) == FAIL_RETRY:
            return FailResult(retry_at_ms=int(raw[1]))
        if int(raw[0]) == FAIL_CANCELLED:
            return FailResult(cancelled=True)
        return FailResult(dlq_id=str(raw[1]))

    async def reclaim(
        self, q: QueueKeys, lease_ms: int, worker: str, most: int
    ) -> list[Reclaimed]:
        """Take over jobs whose lease expired, to end their lost attempt. One sweeper's calls
        are sequential (lua/lib/calls.lua records them)."""
        record, seq, answered = self._call_record(q, f"{worker}:sweep")
        raw = await self._call(
            "reclaim", [q.active, q.job_prefix, record], [lease_ms, worker, most, seq, answered]
        )
        if raw == CALL_STALE:
            raise JobqError(f"reclaim on queue {q.queue}: a stale copy of an earlier call")
        self._answered(record, seq)
        return [
            Reclaimed(
                job_id=raw[i], token=raw[i + 1], previous_worker=raw[i + 2],
                attempt=int(raw[i + 3]), max_attempts=int(raw[i + 4]), backoff=raw[i + 5],
                type=raw[i + 6],
            )
            for i in range(0, len(raw), 7)
        ]

    async def handback(
        self, q: QueueKeys, leases: list[tuple[str, str]], *,
        free_handbacks: int = MAX_HANDBACKS, keep: int = FAILED_KEEP,
        max_age_ms: int = FAILED_MAX_AGE_S * 1000, dlq_max_age_ms: int = 0,
    ) -> int:
        """Return unfinished jobs to the front of the queue without spending an attempt (a job
        whose cancel was requested ends ``cancelled``); past ``free_handbacks`` hand-backs of
        a job (0 = no limit) its attempt is spent (``keep``, ``max_age_ms``: failed records
        kept, for a job dead-lettered so)."""
        return int(await self._call("handback", handback_keys(q),
                                    handback_args(q, leases, free_handbacks, keep, max_age_ms,
                                                  dlq_max_age_ms)))

    async def put_back(self, q: QueueKeys, leases: list[tuple[str, str]]) -> int:
        """Return prefetched jobs that never started, as if never claimed (worker/prefetch.py);
        one whose cancel was requested ends ``cancelled``."""
        flat = [x for pair in leases for x in pair]
        return int(await self._call("put_back", [q.active, q.wait, q.job_prefix, q.cancelled],
                                    flat))

    async def reserve(
        self, q: QueueKeys, job_id: str, name: str, token: str, retention_s: int,
        nonce: str | None = None,
    ) -> bool:
        """Reserve a side effect; False when an earlier call of this job already did. Raises
        LeaseLost. A caller that sends it again after an error passes the same ``nonce``."""
        code = await self._call(
            "reserve", [q.job(job_id), q.side_effect(job_id, name)],
            [token, retention_s, nonce or _nonce()],
        )
        _raise_for(code, f"lease on job {job_id} was lost")
        return bool(code == DONE)

    async def replay(
        self, q: QueueKeys, dlq_id: str, idem_record: str, job_id: str, fingerprint: str,
        retention_s: int, job: NewJob, replayed_from_job_id: str,
    ) -> bool:
        """Create the replay job; True when it was a duplicate of an earlier replay."""
        code = await self._call(
            "replay",
            [q.dlq_entry(dlq_id), q.dlq_replays(dlq_id), idem_record, q.job(job_id), q.wait],
            [job_id, fingerprint, retention_s, *job.args(), replayed_from_job_id, dlq_id,
             _nonce()],
            first=_known(q), durable=True,
        )
        _raise_for(code, f"DLQ entry {dlq_id}: replay key was used with other content"
                   if code == CONFLICT else f"no DLQ entry {dlq_id}")
        return bool(code == DUPLICATE)

    async def cancel(self, q: QueueKeys, job_id: str, keep: int, max_age_ms: int) -> bool:
        """Cancel a job: True when it is cancelled now, False when it runs and its worker was
        asked to cancel it. Raises NotFound, or JobFinished when it ended already."""
        code = await self._call(
            "cancel", [q.job(job_id), q.wait, q.delayed, q.cancelled, q.job_prefix, q.cancels,
                       q.events],
            [job_id, keep, max_age_ms, _nonce()], durable=True,
        )
        _raise_for(code, f"no job {job_id}" if code == NOT_FOUND
                   else f"job {job_id} has finished already")
        return bool(code == DONE)

    async def end_cancelled(
        self, q: QueueKeys, job_id: str, token: str, keep: int, max_age_ms: int
    ) -> None:
        """End a running attempt as ``cancelled`` (terminal). Raises LeaseLost."""
        code = await self._call_worker_write(
            "end_cancelled", [q.active, q.cancelled, q.job_prefix, q.events],
            [job_id, token, keep, max_age_ms],
        )
        _raise_for(code, f"lease on job {job_id} was lost")

    async def progress(
        self, q: QueueKeys, job_id: str, token: str, fraction: float, message: str
    ) -> None:
        """Record a running job's progress and notify its watchers. Raises LeaseLost."""
        code = await self._call("progress", [q.job(job_id), q.events],
                                [job_id, token, repr(fraction), message])
        _raise_for(code, f"lease on job {job_id} was lost")

    async def discard(self, q: QueueKeys, dlq_id: str) -> None:
        """Delete a DLQ entry and its replay log. Raises NotFound."""
        code = await self._call(
            "discard",
            [q.dlq, q.dlq_entry(dlq_id), q.dlq_replays(dlq_id), q.dlq_tombstone(dlq_id)],
            [dlq_id, _nonce(), DISCARD_TOMBSTONE_S])
        _raise_for(code, f"no DLQ entry {dlq_id}")

    async def throughput(self, q: QueueKeys, window_min: int) -> tuple[int, list[int], list[int]]:
        """Redis's clock (ms) and the queue's completed and failed counts per minute over the
        last ``window_min`` minutes, oldest first: one call for the whole window."""
        raw = await self._call("throughput", [q.throughput_prefix], [window_min])
        return int(raw[0]), [int(c) for c in raw[1::2]], [int(f) for f in raw[2::2]]


def handback_keys(q: QueueKeys) -> list[str]:
    """The KEYS of ``handback``, shared with the watchdog's last-resort hand-back."""
    return [q.active, q.wait, q.job_prefix, q.cancelled, q.failed, q.dlq, q.dlq_seq, q.dlq_prefix,
            q.throughput_prefix, q.events]


def handback_args(
    q: QueueKeys, leases: list[tuple[str, str]], free_handbacks: int, keep: int,
    max_age_ms: int, dlq_max_age_ms: int,
) -> list[Any]:
    """The ARGV of ``handback``, shared with the watchdog's last-resort hand-back."""
    return [free_handbacks, q.queue, keep, max_age_ms, dlq_max_age_ms,
            *(x for pair in leases for x in pair)]
