"""The Lua scripts, loaded once per connection, with one typed method each.

Every state change touching more than one key is one script (``lua/<name>.lua``). Pieces that
several scripts need (Redis's clock, the answer codes, the idempotency check, storing a new job,
ending an attempt, trimming finished jobs) live once in ``lua/lib/<piece>.lua`` and are inlined
where a script says ``--- @include "lib/<piece>"``, so the scripts cannot drift apart. Scripts
answer failures with small negative integers; ``_raise_for`` maps them to exceptions in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from jobq.errors import (
    IdempotencyConflict,
    JobFinished,
    JobqError,
    LeaseLost,
    NotFound,
    QueuePaused,
)
from jobq.keys import QueueKeys, known_queues

# The answers of lua/lib/codes.lua, same names and values (tests/test_scripts.py compares them).
CREATED = 0
DUPLICATE = 1
DONE = 1
SKIPPED = 0
LEASE_LOST = -1
CONFLICT = -2
NOT_FOUND = -3
KEEP_IDLE = 2  # connections a Scripts keeps between calls instead of returning to the pool
PAUSED = -4
CANCEL_REQUESTED = 2
FINISHED = -5

_ERRORS: dict[int, type[JobqError]] = {
    LEASE_LOST: LeaseLost,
    CONFLICT: IdempotencyConflict,
    NOT_FOUND: NotFound,
    PAUSED: QueuePaused,
    FINISHED: JobFinished,
}
_HEADER_KEY = re.compile(r"^\s*KEYS\[(\d+)\]", re.MULTILINE)
_INCLUDE = re.compile(r'^--- @include "(lib/[a-z_]+)"\n', re.MULTILINE)
_ANY_INCLUDE = re.compile(r"^-+\s*@include", re.MULTILINE)
SCRIPT_NAMES = (
    "enqueue", "claim", "renew", "complete", "fail", "reclaim", "handback", "reserve", "replay",
    "cancel", "end_cancelled", "discard",
)


def lua_file(path: str) -> str:
    """One file under ``jobq/lua/`` as written, e.g. ``claim.lua`` or ``lib/clock.lua``."""
    return resources.files("jobq").joinpath("lua", path).read_text()


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
    """How many KEYS the script's header comment declares."""
    header = source.split("]]", 1)[0]
    return len(_HEADER_KEY.findall(header))


def _known(q: QueueKeys) -> tuple[str, ...]:
    """Add the queue to the set of known queues, which readers list instead of the queues of
    the task modules they happen to load. Sent ahead of the script that creates the job, not
    inside it: the set has no queue's hash tag. Adding a known member changes nothing."""
    return ("SADD", known_queues(q.prefix), q.queue)


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

    def args(self) -> list[str | int]:
        timeout = "" if self.timeout_s is None else str(self.timeout_s)
        return [self.type, self.queue, self.payload_json, self.idempotency_key,
                self.max_attempts, self.backoff_json, timeout]


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


class Scripts:
    """The scripts bound to one Redis client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts: dict[str, AsyncScript] = {}
        self._key_counts: dict[str, int] = {}
        self._idle: list[Any] = []  # connections kept between calls (see _send)
        for name in SCRIPT_NAMES:
            source = script_source(name)
            self._scripts[name] = redis.register_script(source)
            self._key_counts[name] = header_key_count(source)

    async def load(self) -> None:
        """Load every script into Redis once, so calls go by SHA (reloaded on NOSCRIPT)."""
        for script in self._scripts.values():
            await self.redis.script_load(script.script)

    async def _call(
        self, name: str, keys: list[str], args: list[Any], *, first: tuple[Any, ...] = (),
    ) -> Any:
        """Run a script by SHA; ``first`` is one plain command sent ahead of it in the same
        round trip (not atomic with the script)."""
        if len(keys) != self._key_counts[name]:
            raise JobqError(f"{name}: passes {len(keys)} keys, header declares "
                            f"{self._key_counts[name]}")
        script = self._scripts[name]
        commands = [c for c in (first, ("EVALSHA", script.sha, len(keys), *keys, *args)) if c]
        try:
            return await self._send(commands)
        except NoScriptError:  # Redis restarted or flushed its script cache: load, try again
            await self.redis.script_load(script.script)
            return await self._send(commands)

    async def _send(self, commands: list[tuple[Any, ...]]) -> Any:
        """One round trip on a pooled connection, packed by hiredis; the last command's answer.

        Every job passes through here several times; redis-py's generic command path costs
        about twice as much CPU per call, which caps a single producer's enqueue rate. For the
        same reason the last ``KEEP_IDLE`` connections this object used stay with it between
        calls instead of going back through the pool (its lock and per-checkout socket check
        cost as much as packing and parsing); they are closed with the client's pool.
        """
        packed = b"".join(pack_command(command) for command in commands)
        pool = self.redis.connection_pool
        for attempt in (1, 2):
            conn = (self._idle.pop() if self._idle
                    else await pool.get_connection())  # type: ignore[no-untyped-call]
            try:
                await conn.send_packed_command(packed, check_health=False)
                for _ in commands:  # an error answer raises here, and disconnects below
                    response = await conn.read_response()
            except (ConnectionError, TimeoutError):
                await conn.disconnect()
                await pool.release(conn)
                if attempt == 2:
                    raise
                continue  # a connection gone stale (Redis restarted): one fresh try
            except BaseException:
                await conn.disconnect()  # its state is unknown (cancelled mid-reply)
                await pool.release(conn)
                raise
            if len(self._idle) < KEEP_IDLE:
                self._idle.append(conn)
            else:
                await pool.release(conn)
            if isinstance(response, ResponseError):
                raise response
            return response
        raise AssertionError("unreachable")

    async def enqueue(
        self, q: QueueKeys, idem_record: str, job_id: str, fingerprint: str, retention_s: int,
        delay_ms: int, job: NewJob,
    ) -> bool:
        """Create the job unless its key is known; True when it was a duplicate."""
        code = await self._call(
            "enqueue", [idem_record, q.job(job_id), q.wait, q.delayed],
            [job_id, fingerprint, retention_s, delay_ms, *job.args()], first=_known(q),
        )
        _raise_for(code, f"idempotency key of job {job_id} was used with other content")
        return bool(code == DUPLICATE)

    async def claim(
        self, q: QueueKeys, most: int, lease_ms: int, worker: str
    ) -> tuple[int, int | None, list[Claimed]]:
        """Lease up to ``most`` jobs. Also returns Redis's clock (ms) and when the next delayed
        job falls due, both on that clock. Raises QueuePaused while the queue is paused."""
        raw = await self._call(
            "claim", [q.wait, q.active, q.delayed, q.job_prefix, q.paused],
            [most, lease_ms, worker],
        )
        if isinstance(raw, int):
            _raise_for(raw, f"queue {q.queue} is paused")
        now, next_due = int(raw[0]), int(raw[1])
        jobs = [
            Claimed(
                job_id=raw[i], token=raw[i + 1], type=raw[i + 2], payload=raw[i + 3],
                attempt=int(raw[i + 4]), max_attempts=int(raw[i + 5]), backoff=raw[i + 6],
                ready_at_ms=int(raw[i + 7]), timeout_s=float(raw[i + 8]) if raw[i + 8] else None,
            )
            for i in range(2, len(raw), 9)
        ]
        return now, (None if next_due < 0 else next_due), jobs

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
        raw = await self._call(
            "complete", [q.active, q.completed, q.job_prefix, q.throughput_prefix],
            [keep, max_age_ms, *flat],
        )
        return [r == DONE for r in raw]

    async def fail(
        self, q: QueueKeys, job_id: str, token: str, reason: str, delay_ms: int,
        *, permanent: bool, outcome: str, keep: int, max_age_ms: int, dlq_max_age_ms: int = 0,
    ) -> FailResult:
        """End a failed attempt: retry after ``delay_ms`` or dead-letter. Raises LeaseLost."""
        raw = await self._call(
            "fail",
            [q.active, q.delayed, q.failed, q.dlq, q.dlq_seq, q.job_prefix, q.dlq_prefix,
             q.throughput_prefix],
            [job_id, token, reason, delay_ms, int(permanent), outcome, q.queue, keep, max_age_ms,
             dlq_max_age_ms],
        )
        if isinstance(raw, int):
            _raise_for(raw, f"lease on job {job_id} was lost")
        if int(raw[0]) == 1:
            return FailResult(retry_at_ms=int(raw[1]))
        return FailResult(dlq_id=str(raw[1]))

    async def reclaim(
        self, q: QueueKeys, lease_ms: int, worker: str, most: int
    ) -> list[Reclaimed]:
        """Take over jobs whose lease expired, to end their lost attempt."""
        raw = await self._call(
            "reclaim", [q.active, q.job_prefix], [lease_ms, worker, most]
        )
        return [
            Reclaimed(
                job_id=raw[i], token=raw[i + 1], previous_worker=raw[i + 2],
                attempt=int(raw[i + 3]), max_attempts=int(raw[i + 4]), backoff=raw[i + 5],
                type=raw[i + 6],
            )
            for i in range(0, len(raw), 7)
        ]

    async def handback(self, q: QueueKeys, leases: list[tuple[str, str]]) -> int:
        """Return unfinished jobs to the front of the queue without spending an attempt."""
        flat = [x for pair in leases for x in pair]
        return int(await self._call("handback", [q.active, q.wait, q.job_prefix], flat))

    async def reserve(
        self, q: QueueKeys, job_id: str, name: str, token: str, retention_s: int, attempt: int
    ) -> bool:
        """Reserve a side effect; False when an earlier attempt already did. Raises LeaseLost."""
        code = await self._call(
            "reserve", [q.job(job_id), q.side_effect(job_id, name)], [token, retention_s, attempt]
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
            [job_id, fingerprint, retention_s, *job.args(), replayed_from_job_id, dlq_id],
            first=_known(q),
        )
        _raise_for(code, f"DLQ entry {dlq_id}: replay key was used with other content"
                   if code == CONFLICT else f"no DLQ entry {dlq_id}")
        return bool(code == DUPLICATE)

    async def cancel(self, q: QueueKeys, job_id: str, keep: int, max_age_ms: int) -> bool:
        """Cancel a job: True when it is cancelled now, False when it runs and its worker was
        asked to cancel it. Raises NotFound, or JobFinished when it ended already."""
        code = await self._call(
            "cancel", [q.job(job_id), q.wait, q.delayed, q.cancelled, q.job_prefix],
            [job_id, keep, max_age_ms],
        )
        _raise_for(code, f"no job {job_id}" if code == NOT_FOUND
                   else f"job {job_id} has finished already")
        return bool(code == DONE)

    async def end_cancelled(
        self, q: QueueKeys, job_id: str, token: str, keep: int, max_age_ms: int
    ) -> None:
        """End a running attempt as ``cancelled`` (terminal). Raises LeaseLost."""
        code = await self._call(
            "end_cancelled", [q.active, q.cancelled, q.job_prefix],
            [job_id, token, keep, max_age_ms],
        )
        _raise_for(code, f"lease on job {job_id} was lost")

    async def discard(self, q: QueueKeys, dlq_id: str) -> None:
        """Delete a DLQ entry and its replay log. Raises NotFound."""
        code = await self._call("discard", [q.dlq, q.dlq_entry(dlq_id), q.dlq_replays(dlq_id)],
                                [dlq_id])
        _raise_for(code, f"no DLQ entry {dlq_id}")
