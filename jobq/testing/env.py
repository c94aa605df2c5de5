"""Level 2: the real pipeline in this process. Jobs are created by the real client, run by the
real worker loop (``QueueRunner``: claim, execute, finish) and written by the real Lua scripts,
on a real server (the plugin's embedded Valkey). Waits are on the queues' event streams, which
the scripts append to: no sleeps.

``drain()`` re-raises the first exception a handler raised (fail fast, as Dramatiq's
``join``): the worker records only its text, so the handlers run here are wrapped to keep the
exception object itself."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, overload

from jobq import keys
from jobq.client import Client, EnqueueResult
from jobq.connection import connect
from jobq.context import JobContext
from jobq.errors import RetryLater
from jobq.hooks import close_lifespan, open_lifespan
from jobq.jobs import Backoff, DlqEntry, JobPublic
from jobq.listing import ListState, list_jobs
from jobq.results import JobHandle
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.tasks import P, R, Registry, Task
from jobq.worker.leases import LeaseTable
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.runner import QueueRunner, QueueSpec

STOP_S = 3.0  # the runners' loops get this long to end when the environment closes
READ_BLOCK_MS = 500  # one XREAD of drain() at most, before it looks at failures again


class JobqEnv:
    """A client and a worker on every queue of ``tasks``; made by ``JobqEnv.start``."""

    def __init__(self, settings: Settings, registry: Registry, client: Client,
                 runners: list[QueueRunner], failures: list[BaseException]) -> None:
        self.settings = settings
        self.registry = registry
        self.client = client
        self.runners = runners
        self.failures = failures
        """Exceptions handlers raised (RetryLater aside), oldest first; drain() takes them."""

    @classmethod
    @asynccontextmanager
    async def start(
        cls, redis_url: str, tasks: Registry | Iterable[Task[Any, Any]], *,
        concurrency: int = 4, key_prefix: str | None = None, **settings: Any,
    ) -> AsyncIterator[JobqEnv]:
        """Run a worker for every queue of ``tasks`` until the block ends, under a key prefix
        of its own (so environments sharing one server never meet); ``settings`` are more
        ``Settings`` fields."""
        s = Settings(redis_url=redis_url,
                     key_prefix=key_prefix or f"jobqtest{uuid.uuid4().hex[:10]}", **settings)
        failures: list[BaseException] = []
        declared = tasks if isinstance(tasks, Registry) else Registry(tasks)
        # Its tasks run inside its middleware and lifespan already (jobq.hooks).
        registry = Registry([_recording(t, failures) for t in declared])
        resources = await open_lifespan(declared)
        redis = connect(s.redis_url)
        client = Client(redis, registry, s)
        scripts = Scripts(redis)
        await scripts.load()
        leases, metrics = LeaseTable(), WorkerMetrics()
        runners = [QueueRunner(QueueSpec(q, concurrency), "jobq-testing", s, registry, scripts,
                               leases, metrics) for q in registry.queues]
        loops = [asyncio.create_task(r.fetch()) for r in runners]
        loops += [asyncio.create_task(f.run()) for r in runners for f in r.finishers]
        loop = asyncio.get_running_loop()
        try:
            yield cls(s, registry, client, runners, failures)
        finally:
            for runner in runners:
                runner.stop()
            for runner in runners:
                await runner.drain(loop.time() + STOP_S)
                for finisher in runner.finishers:
                    await finisher.close()
            _, left = await asyncio.wait(loops, timeout=STOP_S)
            for task in left:
                task.cancel()
            await close_lifespan(resources)
            await client.close()

    @property
    def queues(self) -> list[str]:
        return self.registry.queues

    @overload
    async def enqueue(self, task: Task[P, R], idempotency_key: str, payload: P, *,
                      delay_s: float = 0.0, attempts: int | None = None,
                      backoff: Backoff | None = None, priority: int | None = None,
                      ) -> JobHandle[R]: ...

    @overload
    async def enqueue(self, task: str, idempotency_key: str, payload: dict[str, Any], *,
                      delay_s: float = 0.0, attempts: int | None = None,
                      backoff: Backoff | None = None, priority: int | None = None,
                      ) -> EnqueueResult: ...

    async def enqueue(self, task: Task[Any, Any] | str, idempotency_key: str, payload: Any, *,
                      delay_s: float = 0.0, attempts: int | None = None,
                      backoff: Backoff | None = None, priority: int | None = None,
                      ) -> JobHandle[Any] | EnqueueResult:
        """A typed task's job (a ``JobHandle``), or one by type name and dict payload."""
        if isinstance(task, Task):
            return await self.client.send(task, idempotency_key, payload, delay_s=delay_s,
                                          attempts=attempts, backoff=backoff, priority=priority)
        return await self.client.enqueue(task, idempotency_key, payload, delay_s=delay_s,
                                         attempts=attempts, backoff=backoff, priority=priority)

    async def drain(self, queue: str | None = None, *, fail_fast: bool = True,
                    timeout: float = 10.0, delayed: bool = False) -> None:  # noqa: ASYNC109
        """Wait until no job of ``queue`` (default: every queue) waits or runs; ``delayed``:
        delayed jobs (retries' backoff included) too, each made due at once. With
        ``fail_fast`` the first exception a handler raised is re-raised (at once, and at the
        end); without, failures take their course (retries, the DLQ) and are forgotten.
        ``TimeoutError`` after ``timeout`` seconds."""
        queues = [queue] if queue else self.queues
        redis = self.client.redis
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if fail_fast and self.failures:
                raise self.failures.pop(0)
            marks = await asyncio.gather(*(self._mark(q) for q in queues))
            counts = await asyncio.gather(*(self.client.queue_counts(q) for q in queues))
            late = sum(int(c["delayed"]) for c in counts) if delayed else 0
            if late:
                await self.run_delayed_now(queue)
            if not late and not sum(int(c["waiting"]) + int(c["active"]) for c in counts):
                break
            left_ms = int((deadline - loop.time()) * 1000)
            if left_ms <= 0:
                raise TimeoutError(f"jobs still waiting or running after {timeout}s: "
                                   f"{dict(zip(queues, counts, strict=True))}")
            # Any state change after the marks is an entry after them.
            await redis.xread({self.client.keys(q).events: m for q, m in zip(queues, marks,
                                                                            strict=True)},
                              block=min(left_ms, READ_BLOCK_MS))
        if fail_fast and self.failures:
            raise self.failures.pop(0)
        if not fail_fast:
            self.failures.clear()  # seen and let pass: a later drain does not raise them

    async def _mark(self, queue: str) -> str:
        """Keep the queue's event stream alive (the scripts write to it only while it exists)
        and give the id of an entry of its own, after which to read."""
        stream = self.client.keys(queue).events
        async with self.client.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, {"e": "watch", "ids": "[]"}, maxlen=keys.EVENTS_MAXLEN,
                      approximate=True)
            pipe.pexpire(stream, keys.EVENTS_TTL_MS)
            entry_id, _ = await pipe.execute()
        return str(entry_id)

    async def run_delayed_now(self, queue: str | None = None) -> int:
        """Make every delayed job (``delay_s``, a retry's backoff) due now; how many."""
        moved = 0
        for name in [queue] if queue else self.queues:
            q = self.client.keys(name)
            ids = [str(i) for i in await self.client.redis.zrange(q.delayed, 0, -1)]
            if ids:
                moved += len(ids)
                due: dict[str, float] = dict.fromkeys(ids, 0.0)  # claim promotes them now
                await self.client.redis.zadd(q.delayed, due, xx=True)
        for runner in self.runners:
            if queue in (None, runner.spec.name):
                runner.wake()
        return moved

    async def jobs(self, state: ListState, queue: str | None = None) -> list[JobPublic]:
        """The jobs in ``state`` (full records), of ``queue`` or of every queue."""
        found: list[JobPublic] = []
        for name in [queue] if queue else self.queues:
            page = await list_jobs(self.client, name, state, 10_000, None)
            found += await asyncio.gather(*(self.client.get_job(j.jobId) for j in page.items))
        return found

    async def dlq(self, queue: str | None = None) -> list[DlqEntry]:
        """The dead-lettered jobs' entries, newest first."""
        return (await self.client.list_dlq(queue, limit=1000)).items


def _recording(task: Task[Any, Any], failures: list[BaseException]) -> Task[Any, Any]:
    """``task`` with its handler wrapped to keep what it raises (for drain's fail fast)."""
    handler: Callable[..., Any] = task.handler
    if inspect.iscoroutinefunction(handler):
        async def run_async(ctx: JobContext, payload: Any) -> Any:
            try:
                return await handler(ctx, payload)
            except RetryLater:
                raise
            except Exception as exc:
                failures.append(exc)
                raise

        wrapped: Callable[[JobContext, Any], Awaitable[Any] | Any] = run_async
    else:
        def run_sync(ctx: JobContext, payload: Any) -> Any:
            try:
                return handler(ctx, payload)
            except RetryLater:
                raise
            except Exception as exc:
                failures.append(exc)  # list.append is atomic: safe from a handler thread
                raise

        wrapped = run_sync
    return dataclasses.replace(task, handler=wrapped)
