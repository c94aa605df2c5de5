"""Waiting on jobs without polling: one reader task per queue blocks on the queue's event
stream (``XREAD BLOCK``), which the scripts that change a job's state append to, and fans each
event out to every local watcher of the jobs it names. A thousand long polls on one queue cost
one blocked Redis connection, and a watcher hears of a change as soon as it is written.

The scripts write events only while the stream exists, and it exists only while a reader keeps
it alive (an entry of its own and a TTL, renewed every EVENTS_KEEPALIVE_S), so nobody waiting
costs the completion path one EXISTS. A watcher is registered before it reads the job, and a
reader starts from its own first entry before any watcher of it reads: every change after that
read is written to the stream, and reaches the watcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from jobq import keys
from jobq.client import Client
from jobq.connection import REDIS_DOWN, Redis, result_of
from jobq.jobs import JobPublic, job_from_hash, loads
from jobq.logs import get_logger

log = get_logger("jobq.watch")
CLOSE_WAIT_S = 2.0  # a reader woken at close ends this soon, or is cancelled
RETRY_S = 0.5  # a reader whose Redis went away tries again after this (watchers re-read anyway)
READ_COUNT = 1000  # most stream entries one XREAD returns


class _Reader:
    """Follows one queue's event stream while it has watchers."""

    def __init__(self, hub: JobWatch, queue: str, stream: str) -> None:
        self.hub = hub
        self.queue = queue
        self.stream = stream
        self.watchers: dict[str, set[asyncio.Queue[str]]] = {}
        self.ready = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._follow()
        except Exception:  # never expected; its watchers time out and re-read, a new one starts
            log.exception("watch.reader_failed", queue=self.queue)

    async def _follow(self) -> None:
        redis: Redis = self.hub.redis
        last: str | None = None
        renewed = 0.0
        answer: Any
        while True:
            try:
                if last is None or time.monotonic() - renewed >= keys.EVENTS_KEEPALIVE_S:
                    mine = await self._keep_alive(redis)
                    renewed = time.monotonic()
                    if last is None:
                        last = mine
                        self.ready.set()
                answer = await redis.xread({self.stream: last}, count=READ_COUNT,
                                           block=keys.EVENTS_BLOCK_MS)
            except REDIS_DOWN as exc:
                log.debug("watch.redis_unavailable", queue=self.queue, error=str(exc))
                await asyncio.sleep(RETRY_S)
                answer = []
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id
                    self._dispatch(fields.get("e", ""), fields.get("ids", "[]"))
            if not self.watchers or self.hub.closing:  # one step: no watcher is missed
                if self.hub.readers.get(self.queue) is self:
                    del self.hub.readers[self.queue]
                return

    async def _keep_alive(self, redis: Redis) -> str:
        """Create or renew the stream (scripts write to it only while it exists); the id of
        the entry written, after which this reader reads."""
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.stream, {"e": "watch", "ids": "[]"}, maxlen=keys.EVENTS_MAXLEN,
                      approximate=True)
            pipe.pexpire(self.stream, keys.EVENTS_TTL_MS)
            entry_id, _ = await pipe.execute()
        return str(entry_id)

    def _dispatch(self, what: str, ids: str) -> None:
        for job_id in loads(ids):
            for inbox in self.watchers.get(job_id, ()):
                inbox.put_nowait(what)


class JobWatch:
    """The readers of one process, by queue. ``close`` ends them."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.redis = client.redis
        self.readers: dict[str, _Reader] = {}
        self.closing = False

    @asynccontextmanager
    async def events(
        self, queue: str, job_id: str, deadline: float | None = None,
    ) -> AsyncIterator[asyncio.Queue[str]]:
        """An inbox that receives what happens to ``job_id`` (``completed``, ``progress``...)
        from now on; entered once the queue's reader knows where the stream stands, or at the
        loop time ``deadline`` if that comes first (Redis away)."""
        reader = self.readers.get(queue)
        if reader is None or reader.task.done():  # done: it failed (logged); start another
            reader = self.readers[queue] = _Reader(self, queue, self.client.keys(queue).events)
        inbox: asyncio.Queue[str] = asyncio.Queue()
        reader.watchers.setdefault(job_id, set()).add(inbox)
        try:
            with suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await reader.ready.wait()
            yield inbox
        finally:
            mine = reader.watchers.get(job_id, set())
            mine.discard(inbox)
            if not mine:
                reader.watchers.pop(job_id, None)

    async def wait(self, job_id: str, timeout_s: float | None) -> JobPublic:
        """The job once it is terminal, or as it is when ``timeout_s`` has passed (None = no
        limit). Raises NotFound (and JobExpired) as ``Client.get_job`` does.

        Only waits on asyncio objects are bounded by the timeout, never a Redis call: a
        cancellation inside redis-py can be swallowed on Python 3.11 (CPython gh-86296)."""
        job = await self.client.get_job(job_id)
        if job.terminal or (timeout_s is not None and timeout_s <= 0):
            return job
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        queue = job.queue
        async with self.events(queue, job_id, deadline) as inbox:
            job = await self.read(queue, job_id)  # what changed before we listened
            while not job.terminal:
                try:
                    async with asyncio.timeout_at(deadline):
                        await inbox.get()
                except TimeoutError:  # the wait is over: the job as it is now
                    return await self.read(queue, job_id)
                while not inbox.empty():  # several events: one read answers them all
                    inbox.get_nowait()
                job = await self.read(queue, job_id)
        return job

    async def read(self, queue: str, job_id: str) -> JobPublic:
        """The job, known to be in ``queue``: one read (``Client.get_job`` when it is gone,
        to raise NotFound or JobExpired)."""
        raw: dict[str, str] = await result_of(self.redis.hgetall(
            self.client.keys(queue).job(job_id)))  # decoded: connect() decodes responses
        return job_from_hash(raw) if raw else await self.client.get_job(job_id)

    async def close(self) -> None:
        """End every reader. Each is woken by an entry in its stream rather than cancelled in
        its XREAD: a cancel mid-reply leaves the connection to be closed by the garbage
        collector (redis-py closes it without waiting), and a cluster client hands it back to
        its pool. Readers that do not end within CLOSE_WAIT_S are cancelled."""
        self.closing = True
        readers = list(self.readers.values())
        for reader in readers:
            with suppress(*REDIS_DOWN):
                await self.redis.xadd(reader.stream, {"e": "close", "ids": "[]"},
                                      maxlen=keys.EVENTS_MAXLEN, approximate=True,
                                      nomkstream=True)
        tasks = [r.task for r in readers]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.readers.clear()
