"""The one producer path: API, CLI and scheduler all create jobs through ``Client.enqueue``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jobq import keys
from jobq.connection import Redis, connect, result_of
from jobq.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidPayload,
    JobExpired,
    JobqError,
    NotFound,
    UnknownTask,
)
from jobq.flow import NO_LIMITS, FlowFields, check_priority
from jobq.jobs import (
    Backoff,
    DlqEntry,
    DlqPage,
    JobPublic,
    dlq_entry_from_hash,
    dumps,
    fingerprint,
    job_from_hash,
)
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.scripts import CONFLICT, DUPLICATE, ENQUEUE_CHUNK, BatchJob, NewJob, Scripts
from jobq.settings import Settings, load_settings
from jobq.tasks import P, R, Registry, Task, load_registry
from jobq.tracing import tracing_for
from jobq.workflows.model import Node, Part
from jobq.workflows.service import WorkflowCreated, Workflows, WorkflowView
from jobq.workflows.views import Graph, NodeRow, Page, ResultRow, Summary, WorkflowReads

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from jobq.results import JobHandle
    from jobq.watch import JobWatch

log = get_logger("jobq.client")

COUNT_STATES = ("waiting", "active", "delayed", "completed", "failed", "cancelled", "dlq",
                "limited")


_LEVELS = range(keys.PRIORITY_MIN, keys.PRIORITY_MAX + 1)
COUNT_READS = 9 + len(_LEVELS)  # answers of add_count_commands, per queue


def add_count_commands(pipe: Any, q: keys.QueueKeys) -> None:
    """Queue on ``pipe`` the commands whose answers ``counts_row`` reads (one queue's keys)."""
    pipe.zcard(q.active)
    pipe.zcard(q.delayed)
    pipe.zcard(q.completed)
    pipe.zcard(q.failed)
    pipe.zcard(q.cancelled)
    pipe.zcard(q.dlq)
    pipe.exists(q.paused)
    pipe.get(q.limited)
    pipe.get(q.parked)
    for level in _LEVELS:
        pipe.llen(q.wait_level(level))


def counts_row(raw: list[Any]) -> dict[str, int | bool]:
    """The first answers of a pipeline that ``add_count_commands`` filled, by state."""
    row = raw[:COUNT_READS]
    active, delayed, completed, failed, cancelled, dlq, paused = row[:7]
    rate_held, parked = (max(0, int(n or 0)) for n in row[7:9])
    return {
        # Jobs held by a limit (R17) are waiting (parked) or delayed (rate) jobs too.
        "waiting": sum(row[9:]) + parked, "active": active,
        "delayed": delayed, "completed": completed, "failed": failed,
        "cancelled": cancelled, "dlq": dlq, "limited": rate_held + parked,
        "paused": bool(paused),
    }


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: str
    queue: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One job of ``Client.enqueue_many``: the arguments of ``Client.enqueue``."""

    type: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int | None = None
    backoff: Backoff | None = None
    delay_s: float = 0.0
    priority: int | None = None  # None: the task's


@dataclass(frozen=True, slots=True)
class ReplayResult:
    job_id: str
    replayed_from_job_id: str
    dlq_id: str
    duplicate: bool


class Client:
    """Create, read and replay jobs. Holds no connection of its own: it is given one."""

    def __init__(self, redis: Redis, registry: Registry, settings: Settings, *,
                 tracer_provider: TracerProvider | None = None) -> None:
        """``tracer_provider``: where this client's spans go (R25); default the global one."""
        self.redis = redis
        self.registry = registry
        self.settings = settings
        self.scripts = Scripts(redis, ack_replicas=settings.ack_replicas,
                               ack_timeout_s=settings.ack_timeout_s)
        self._prefix = settings.key_prefix
        # The registry's queues, built once: enqueue is on every producer's hot path.
        self._known = {q: keys.QueueKeys(self._prefix, q) for q in registry.queues}
        self._tracing = tracing_for(tracer_provider)
        self._watch: JobWatch | None = None  # made by the first wait for a job's end

    def _tracer(self) -> Tracer | None:
        """The tracer when tracing is on (R25), else None: the untraced path stays as it was."""
        return None if self._tracing is None else self._tracing.tracer()

    def remote_parent(self, headers: Mapping[str, Any]) -> AbstractContextManager[None]:
        """Within the block, this client's spans continue the trace an HTTP request's W3C
        headers name (R25); a malformed header is ignored. Nothing when tracing is off."""
        if self._tracer() is None:
            return contextlib.nullcontext()
        from jobq.tracing import carrier

        return carrier.remote_parent(headers)

    def root_span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        """Within the block, the jobs this client creates belong to a new trace rooted at span
        ``name`` (a schedule's fire, R25). Nothing when tracing is off."""
        if (tracer := self._tracer()) is None:
            return contextlib.nullcontext()
        from jobq.tracing import spans

        return spans.root(tracer, name, attributes)

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, tasks: Registry | Iterable[Task] | None = None,
    ) -> Client:
        """A client with its own connection: ``settings`` (default: the environment and
        ``.env``, as every jobq process reads them) and ``tasks`` (default: the modules of
        ``JOBQ_TASKS``; none named is an empty registry, fine for typed tasks, which carry
        their own declaration). Close it with ``close()``, or use ``Client.open``."""
        settings = settings or load_settings()
        return cls(connect(settings.redis_url), registry_of(settings, tasks), settings)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings | None = None, *, tasks: Registry | Iterable[Task] | None = None,
    ) -> AsyncIterator[Client]:
        """``async with Client.open() as client:`` a client (``from_settings``) closed on exit."""
        client = cls.from_settings(settings, tasks=tasks)
        try:
            yield client
        finally:
            await client.close()

    async def close(self) -> None:
        """End this client's waits (``watch``) and close its connection."""
        if self._watch is not None:
            await self._watch.close()
            self._watch = None
        await self.redis.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def watch(self) -> JobWatch:
        """This client's long polls on job events (``jobq.watch``), made on first use."""
        if self._watch is None:
            from jobq.watch import JobWatch  # watch builds on this module

            self._watch = JobWatch(self)
        return self._watch

    def keys(self, queue: str) -> keys.QueueKeys:
        return self._known.get(queue) or keys.QueueKeys(self._prefix, queue)

    async def enqueue(
        self,
        type: str,
        idempotency_key: str,
        payload: dict[str, Any],
        *,
        attempts: int | None = None,
        backoff: Backoff | None = None,
        delay_s: float = 0.0,
        priority: int | None = None,
    ) -> EnqueueResult:
        """Create a job once per idempotency key (R2); the payload is validated first.
        ``priority`` (0-9, higher runs first) overrides the task's; the task's rate and
        concurrency keys are computed here, from the validated payload (R17)."""
        b = self._prepare(JobRequest(type, idempotency_key, payload, attempts, backoff, delay_s,
                                     priority))
        if (tracer := self._tracer()) is not None:
            from jobq.tracing import spans

            with spans.send(tracer, b.job.queue, b.job_id, b.job.type) as span:
                result = await self._enqueue(spans.carried(b))
                spans.duplicate(span, result.duplicate)
                return result
        return await self._enqueue(b)

    async def _enqueue(self, b: BatchJob) -> EnqueueResult:
        duplicate = await self.scripts.enqueue(
            self.keys(b.job.queue), b.idem_record, b.job_id, b.fingerprint,
            self.settings.idempotency_retention_s, b.delay_ms, b.job,
        )
        return EnqueueResult(b.job_id, b.job.queue, duplicate)

    async def send(
        self,
        task: Task[P, R],
        idempotency_key: str,
        payload: P,
        *,
        attempts: int | None = None,
        backoff: Backoff | None = None,
        delay_s: float = 0.0,
        priority: int | None = None,
    ) -> JobHandle[R]:
        """``enqueue`` for a task object and a payload of its model (``task.enqueue`` calls
        this): the task need not be in this client's registry. A handle typed by the result."""
        from jobq.results import JobHandle  # results builds on this module

        # Validated below as any payload is: a mistyped field is InvalidPayload, not a warning.
        body = payload.model_dump(mode="json", warnings=False)
        request = JobRequest(task.name, idempotency_key, body, attempts, backoff, delay_s, priority)
        b = self._prepare(request, task)
        if (tracer := self._tracer()) is not None:
            from jobq.tracing import spans

            with spans.send(tracer, b.job.queue, b.job_id, b.job.type) as span:
                result = await self._enqueue(spans.carried(b))
                spans.duplicate(span, result.duplicate)
        else:
            result = await self._enqueue(b)
        return JobHandle(b.job_id, b.job.queue, result.duplicate, task, self)

    async def enqueue_many(
        self, requests: list[JobRequest]
    ) -> list[EnqueueResult | JobqError]:
        """Create many jobs, each once per its own idempotency key, as ``enqueue`` would; the
        answer per job, in order, is its result or its own error (an invalid job spoils none of
        the others). One script call per queue and ENQUEUE_CHUNK jobs (the jobs of one call
        share the queue's hash tag); each call is sent as soon as its jobs are ready, so Redis
        runs one chunk while this process prepares the next."""
        if (tracer := self._tracer()) is not None:
            from jobq.tracing import spans

            with spans.send_batch(tracer, len(requests)) as span:
                results = await self._enqueue_many(requests, tracer)
                spans.named(span, {r.queue for r in results if isinstance(r, EnqueueResult)})
                return results
        return await self._enqueue_many(requests, None)

    async def _enqueue_many(
        self, requests: list[JobRequest], tracer: Tracer | None
    ) -> list[EnqueueResult | JobqError]:
        out: list[EnqueueResult | JobqError | None] = [None] * len(requests)
        per_queue: dict[str, list[tuple[int, BatchJob]]] = {}
        sent: list[asyncio.Task[None]] = []
        last: dict[str, asyncio.Task[None]] = {}  # each queue's latest call (cluster: see send)

        async def send(queue: str, items: list[tuple[int, BatchJob]],
                       before: asyncio.Task[None] | None) -> None:
            # Each call of a queue waits for the previous one's answer: submission order is
            # claim order. Two calls in flight at once go out on two connections (a cluster
            # node's or the pool's), and Redis need not run them in the order they were
            # written; one call could also wait for a connection and be overtaken. The overlap
            # kept: Redis runs one chunk while this process prepares the next.
            if before is not None:
                await asyncio.wait([before])
            codes = await self.scripts.enqueue_batch(
                self.keys(queue), self.settings.idempotency_retention_s, [b for _, b in items])
            for (i, b), code in zip(items, codes, strict=True):
                out[i] = EnqueueResult(b.job_id, queue, code == DUPLICATE)
                if code == CONFLICT:
                    out[i] = IdempotencyConflict(
                        f"idempotency key of job {b.job_id} was used with other content")

        async def launch(queue: str) -> None:
            task = asyncio.ensure_future(send(queue, per_queue.pop(queue), last.get(queue)))
            last[queue] = task
            sent.append(task)
            await asyncio.sleep(0)  # let it write its call before the next chunk is prepared

        try:
            for i, request in enumerate(requests):
                try:
                    prepared = self._prepare(request)
                except JobqError as exc:
                    out[i] = exc
                    continue
                if tracer is not None:  # each job's own creation context (a create span)
                    from jobq.tracing import spans

                    prepared = spans.create(tracer, prepared)
                chunk = per_queue.setdefault(prepared.job.queue, [])
                chunk.append((i, prepared))
                if len(chunk) == ENQUEUE_CHUNK:
                    await launch(prepared.job.queue)
            for queue in list(per_queue):
                await launch(queue)
            await asyncio.gather(*sent)
        finally:
            for task in sent:  # on an error (Redis away), cancel the calls not answered yet
                task.cancel()
        return [r for r in out if r is not None]

    def prepare(self, r: JobRequest) -> BatchJob:
        """``_prepare`` for the other producers of jobs (workflow nodes)."""
        return self._prepare(r)

    @functools.cached_property
    def workflows(self) -> Workflows:
        return Workflows(self)

    async def create_workflow(self, idempotency_key: str, spec: Part | list[Node], *,
                              fail_fast: bool = False) -> WorkflowCreated:
        """Create a workflow (a DAG of jobs, R24) once per key; see ``jobq.workflows``."""
        return await self.workflows.create(idempotency_key, spec, fail_fast=fail_fast)

    async def get_workflow(self, workflow_id: str, *, results: bool = False,
                           nodes: bool = True) -> WorkflowView:
        return await self.workflows.get(workflow_id, results=results, nodes=nodes)

    async def cancel_workflow(self, workflow_id: str) -> WorkflowView:
        return await self.workflows.cancel(workflow_id)

    @functools.cached_property
    def workflow_reads(self) -> WorkflowReads:
        return WorkflowReads(self)

    async def list_workflows(self, state: str | None = None, limit: int = 50,
                             cursor: str | None = None) -> Page[Summary]:
        """The workflows still kept, newest first (optionally in one state), paged."""
        return await self.workflow_reads.recent(state, limit, cursor)

    async def workflow_nodes(self, workflow_id: str, limit: int = 100,
                             cursor: str | None = None) -> Page[NodeRow]:
        """A workflow's nodes in spec order: state, job id, epoch, what each waits on."""
        return await self.workflow_reads.nodes(workflow_id, limit, cursor)

    async def workflow_graph(self, workflow_id: str) -> Graph:
        """Nodes and edges, nodes alike collapsed into groups with counts per state."""
        return await self.workflow_reads.graph(workflow_id)

    async def workflow_results(self, workflow_id: str, limit: int = 100,
                               cursor: str | None = None) -> Page[ResultRow]:
        """Ended nodes' results or errors in spec order, paged (they outlive the node jobs)."""
        return await self.workflow_reads.results(workflow_id, limit, cursor)

    async def retry_workflow(self, workflow_id: str,
                             mode: str = "failed_only") -> WorkflowView:
        """Run an ended workflow's nodes again, each under a new epoch: ``failed_only``
        (failed, cancelled, dep_failed nodes), ``failed_and_downstream`` (those and every node
        downstream of them) or ``all``. Raises WorkflowBusy while it runs or cancels."""
        return await self.workflows.retry(workflow_id, mode)

    def _prepare(self, r: JobRequest, task: Task[Any, Any] | None = None) -> BatchJob:
        """Validate one job and compute what its script call needs (its flow keys from the
        validated payload); raises UnknownTask or InvalidPayload."""
        task = task or self.registry.get(r.type)
        model = task.validate(r.payload)
        q = self.keys(task.queue)
        flow = task.flow(q, model)
        level = task.priority if r.priority is None else check_priority(r.priority)
        job_id = keys.job_id_for(task.queue, r.idempotency_key)
        job = NewJob(r.type, task.queue, dumps(r.payload), r.idempotency_key,
                     r.attempts or task.attempts, _backoff_json(r.backoff or task.backoff),
                     task.timeout_s, level,
                     flow.rate_key, flow.rate_max, flow.rate_per_ms, flow.concurrency_key,
                     flow.concurrency_max)
        return BatchJob(q.idempotency(job_id), job_id, fingerprint(r.type, r.payload),
                        int(r.delay_s * 1000), job)

    async def queues(self) -> list[str]:
        """Every queue a job was created in, and those of this process's tasks: what a reader
        sees does not depend on which task modules it loaded."""
        known = await result_of(self.redis.smembers(keys.known_queues(self._prefix)))
        return sorted({str(q) for q in known} | set(self.registry.queues))

    async def get_job(self, job_id: str) -> JobPublic:
        """The full record of a job, read in one round trip from the queue its id names.
        ``JobExpired`` when the record was trimmed (R12) while its idempotency record still
        says the job existed."""
        queue = keys.queue_of_job_id(job_id)
        if queue is None:
            if keys.is_legacy_job_id(job_id):
                return await self._get_legacy_job(job_id)
            raise NotFound(f"no job {job_id}")
        q = self.keys(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(q.job(job_id))
            pipe.exists(q.idempotency(job_id))
            raw, remembered = await pipe.execute()
        return _found_job(job_id, [raw], bool(remembered))

    async def _get_legacy_job(self, job_id: str) -> JobPublic:
        """A job whose id carries no queue (made before ids did): ask every queue. The reads
        span several slots; on a cluster the client splits them by node (no atomicity is
        needed for a read)."""
        mine = self.registry.queues
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.known_queues(self._prefix))
            pipe.exists(keys.legacy_idempotency_record(self._prefix, job_id))
            for queue in mine:
                pipe.hgetall(self.keys(queue).job(job_id))
            known, remembered, *records = await pipe.execute()
        others = sorted(set(known) - set(mine))
        if not any(records) and others:  # a queue of tasks this process did not load
            async with self.redis.pipeline(transaction=False) as pipe:
                for queue in others:
                    pipe.hgetall(self.keys(queue).job(job_id))
                records = await pipe.execute()
        return _found_job(job_id, records, bool(remembered))

    async def counts(self) -> dict[str, dict[str, int | bool]]:
        """Jobs per state, per queue, and whether the queue is paused: one pipeline per queue
        (its keys share one slot, so this holds on Redis Cluster too), all queues at once."""
        queues = await self.queues()
        rows = await asyncio.gather(*(self.queue_counts(queue) for queue in queues))
        return dict(zip(queues, rows, strict=True))

    async def queue_counts(self, queue: str) -> dict[str, int | bool]:
        """One queue's row of ``counts``, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            add_count_commands(pipe, self.keys(queue))
            return counts_row(await pipe.execute())

    async def get_dlq_entry(self, dlq_id: str) -> DlqEntry:
        queue = keys.queue_of_dlq_id(dlq_id)
        if queue is None:
            raise NotFound(f"no DLQ entry {dlq_id}")
        q = self.keys(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(q.dlq_entry(dlq_id))
            pipe.lrange(q.dlq_replays(dlq_id), 0, -1)
            raw, replays = await pipe.execute()
        if not raw:
            raise NotFound(f"no DLQ entry {dlq_id}")
        return dlq_entry_from_hash(raw, replays)

    async def list_dlq(
        self, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> DlqPage:
        """DLQ entries newest first; ``cursor`` continues after the last entry of a page."""
        queues = [queue] if queue else await self.queues()
        top: float | str = "+inf"
        after: tuple[float, str] | None = None
        if cursor:
            score, _, last_id = cursor.partition(":")
            if not score.isdigit() or keys.queue_of_dlq_id(last_id) is None:
                raise InvalidCursor(f"invalid cursor {cursor!r}")
            after = (float(score), last_id)
            top = after[0]
        # One read per queue, each in its queue's slot, side by side.
        pages: list[Any] = list(await asyncio.gather(*(
            self.redis.zrevrangebyscore(
                self.keys(name).dlq, top, "-inf", start=0, num=limit + 64, withscores=True)
            for name in queues)))
        candidates = sorted(
            ((score, dlq_id) for page in pages for dlq_id, score in page),
            key=lambda item: (item[0], _dlq_seq(item[1])),
            reverse=True,
        )
        if after is not None:
            mark = (after[0], _dlq_seq(after[1]))
            candidates = [c for c in candidates if (c[0], _dlq_seq(c[1])) < mark]
        chosen = candidates[:limit]
        items = await asyncio.gather(*(self.get_dlq_entry(dlq_id) for _, dlq_id in chosen))
        more = len(candidates) > limit
        next_cursor = f"{int(chosen[-1][0])}:{chosen[-1][1]}" if more and chosen else None
        return DlqPage(items=list(items), nextCursor=next_cursor)

    async def replay(self, dlq_id: str, idempotency_key: str | None = None) -> ReplayResult:
        """Create a new job from a DLQ entry (R7); the entry itself never changes."""
        entry = await self.get_dlq_entry(dlq_id)
        q = self.keys(entry.queue)
        if (wf := await result_of(self.redis.hget(q.dlq_entry(dlq_id), "wf"))) is not None:
            # A workflow node: the replay reopens its workflow (R24), unless it expired.
            reopened = await self.workflows.replay_node(q, dlq_id, entry.originalJobId, str(wf))
            if reopened is not None:
                return ReplayResult(reopened.job_id, entry.originalJobId, dlq_id,
                                    reopened.duplicate)
        key = idempotency_key or f"replay:{dlq_id}:{uuid.uuid4()}"
        job_id = keys.job_id_for(entry.queue, key)
        try:
            task = self.registry.get(entry.type)
            max_attempts, backoff, timeout = task.attempts, task.backoff, task.timeout_s
            priority, flow = task.priority, _replay_flow(task, q, entry.payload)
        except UnknownTask:  # replayed by a process without that task: keep its shape
            max_attempts, backoff, timeout = max(entry.attempts, 1), Backoff(), None
            priority, flow = keys.DEFAULT_PRIORITY, NO_LIMITS
        job = NewJob(entry.type, entry.queue, dumps(entry.payload), key, max_attempts,
                     _backoff_json(backoff), timeout, priority, flow.rate_key, flow.rate_max,
                     flow.rate_per_ms, flow.concurrency_key, flow.concurrency_max)
        if (tracer := self._tracer()) is not None:
            from jobq.tracing import carrier, spans

            # The new job's creation context is this call; it links to the original's, which
            # its DLQ entry keeps (entries written before it did: the original's record, while
            # it is kept, R12).
            original = (await result_of(self.redis.hget(q.dlq_entry(dlq_id), carrier.FIELD))
                        or await result_of(self.redis.hget(q.job(entry.originalJobId),
                                                        carrier.FIELD)))
            with spans.send(tracer, entry.queue, job_id, entry.type,
                            links=spans.link_to(original)) as span:
                span.set_attribute("jobq.replayed_from", entry.originalJobId)
                duplicate = await self._replay(q, dlq_id, job_id, entry,
                                               replace(job, trace_context=carrier.inject()))
                spans.duplicate(span, duplicate)
        else:
            duplicate = await self._replay(q, dlq_id, job_id, entry, job)
        log.info("job.replayed", jobId=job_id, queue=entry.queue, type=entry.type,
                 replayedFromJobId=entry.originalJobId, dlqId=dlq_id, duplicate=duplicate)
        return ReplayResult(job_id, entry.originalJobId, dlq_id, duplicate)

    async def _replay(self, q: QueueKeys, dlq_id: str, job_id: str, entry: DlqEntry,
                      job: NewJob) -> bool:
        return await self.scripts.replay(
            q, dlq_id, q.idempotency(job_id), job_id,
            fingerprint(f"replay:{dlq_id}", entry.payload), self.settings.idempotency_retention_s,
            job, entry.originalJobId,
        )


def registry_of(settings: Settings, tasks: Registry | Iterable[Task] | None) -> Registry:
    """The registry of a producer: the tasks given, else those of ``settings.tasks``, else none
    (a typed task enqueues without a registry; enqueue by name then says "unknown task")."""
    if isinstance(tasks, Registry):
        return tasks
    if tasks is not None:
        return Registry(tasks)
    return load_registry(settings.tasks) if settings.tasks else Registry([])


def _replay_flow(task: Task, q: keys.QueueKeys, payload: dict[str, Any]) -> FlowFields:
    """A replay counts against its task's limits, as its original did; a payload the task's
    model no longer takes replays as before, without limits (its key cannot be computed)."""
    try:
        return task.flow(q, task.validate(payload))
    except InvalidPayload:
        return NO_LIMITS


@functools.lru_cache(maxsize=256)
def _backoff_json(backoff: Backoff) -> str:
    """Backoffs are frozen and few: serialise each once."""
    return backoff.model_dump_json()


def _dlq_seq(dlq_id: str) -> int:
    _, _, seq = dlq_id.rpartition("-")
    return int(seq) if seq.isdigit() else 0


def _found_job(job_id: str, records: list[dict[str, str]], remembered: bool) -> JobPublic:
    """The first record read, else ``JobExpired`` when the idempotency record still says the
    job existed (its record was trimmed, R12), else ``NotFound``."""
    for raw in records:
        if raw:
            return job_from_hash(raw)
    if remembered:
        raise JobExpired(f"job {job_id} has expired: finished job records are trimmed "
                         "by count and age, sooner than idempotency keys")
    raise NotFound(f"no job {job_id}")
