"""A blocking facade over ``Client`` for producers without an event loop (Django or Flask views,
scripts, Celery-style call sites): ``SyncClient().enqueue(...)``.

Every call runs on one private event loop thread, so a SyncClient can be shared by the threads
of a web server and reuses one connection pool; the async ``Client`` stays the one producer path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from jobq.client import Client, EnqueueResult, JobRequest, ReplayResult, registry_of
from jobq.connection import connect
from jobq.errors import JobqError
from jobq.jobs import Backoff, DlqEntry, DlqPage, JobPublic
from jobq.results import SyncJobHandle
from jobq.settings import Settings, load_settings
from jobq.tasks import P, R, Registry, Task, load_registry
from jobq.workflows import Node, WorkflowCreated, WorkflowView
from jobq.workflows.model import Part
from jobq.workflows.views import Graph, NodeRow, Page, ResultRow, Summary

T = TypeVar("T")


class SyncClient:
    """``Client`` with blocking methods; thread-safe. Close it (or use ``with``) when done."""

    def __init__(self, settings: Settings | None = None, registry: Registry | None = None) -> None:
        self.settings = settings or load_settings()
        self.registry = registry if registry is not None else load_registry(self.settings.tasks)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jobq-client",
                                        daemon=True)
        self._thread.start()
        self._client = self._run(self._open())

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, tasks: Registry | Iterable[Task] | None = None,
    ) -> SyncClient:
        """As ``Client.from_settings``: no ``JOBQ_TASKS`` is an empty registry (typed tasks
        carry their own declaration), where ``SyncClient()`` refuses to start without tasks."""
        settings = settings or load_settings()
        return cls(settings, registry_of(settings, tasks))

    @classmethod
    @contextmanager
    def open(
        cls, settings: Settings | None = None, *, tasks: Registry | Iterable[Task] | None = None,
    ) -> Iterator[SyncClient]:
        """``with SyncClient.open() as client:`` a client (``from_settings``) closed on exit."""
        client = cls.from_settings(settings, tasks=tasks)
        try:
            yield client
        finally:
            client.close()

    async def _open(self) -> Client:
        return Client(connect(self.settings.redis_url), self.registry, self.settings)

    @property
    def client(self) -> Client:
        """The async client under this one (it lives on this object's private loop)."""
        return self._client

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of ``client`` (the async client) on this object's loop; blocks."""
        return self._run(coro)

    def send(
        self,
        task: Task[P, R],
        idempotency_key: str,
        payload: P,
        *,
        attempts: int | None = None,
        backoff: Backoff | None = None,
        delay_s: float = 0.0,
        priority: int | None = None,
    ) -> SyncJobHandle[R]:
        """``Client.send``, blocking (``task.enqueue(sync_client, ...)`` calls this)."""
        handle = self._run(self._client.send(task, idempotency_key, payload, attempts=attempts,
                                             backoff=backoff, delay_s=delay_s,
                                             priority=priority))
        return SyncJobHandle(handle, self)

    def enqueue(
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
        """Create a job once per idempotency key; see ``Client.enqueue``."""
        return self._run(self._client.enqueue(type, idempotency_key, payload, attempts=attempts,
                                              backoff=backoff, delay_s=delay_s,
                                              priority=priority))

    def enqueue_many(self, requests: list[JobRequest]) -> list[EnqueueResult | JobqError]:
        """Create many jobs in few round trips; see ``Client.enqueue_many``."""
        return self._run(self._client.enqueue_many(requests))

    def get_job(self, job_id: str) -> JobPublic:
        return self._run(self._client.get_job(job_id))

    def counts(self) -> dict[str, dict[str, int | bool]]:
        return self._run(self._client.counts())

    def list_dlq(self, queue: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> DlqPage:
        return self._run(self._client.list_dlq(queue, limit, cursor))

    def get_dlq_entry(self, dlq_id: str) -> DlqEntry:
        return self._run(self._client.get_dlq_entry(dlq_id))

    def replay(self, dlq_id: str, idempotency_key: str | None = None) -> ReplayResult:
        return self._run(self._client.replay(dlq_id, idempotency_key))

    def create_workflow(self, idempotency_key: str, spec: Part | list[Node], *,
                        fail_fast: bool = False) -> WorkflowCreated:
        """Create a workflow once per key; see ``Client.create_workflow``."""
        return self._run(self._client.create_workflow(idempotency_key, spec,
                                                      fail_fast=fail_fast))

    def get_workflow(self, workflow_id: str, *, results: bool = False) -> WorkflowView:
        return self._run(self._client.get_workflow(workflow_id, results=results))

    def cancel_workflow(self, workflow_id: str) -> WorkflowView:
        return self._run(self._client.cancel_workflow(workflow_id))

    def list_workflows(self, state: str | None = None, limit: int = 50,
                       cursor: str | None = None) -> Page[Summary]:
        return self._run(self._client.list_workflows(state, limit, cursor))

    def workflow_nodes(self, workflow_id: str, limit: int = 100,
                       cursor: str | None = None) -> Page[NodeRow]:
        return self._run(self._client.workflow_nodes(workflow_id, limit, cursor))

    def workflow_graph(self, workflow_id: str) -> Graph:
        return self._run(self._client.workflow_graph(workflow_id))

    def workflow_results(self, workflow_id: str, limit: int = 100,
                         cursor: str | None = None) -> Page[ResultRow]:
        return self._run(self._client.workflow_results(workflow_id, limit, cursor))

    def retry_workflow(self, workflow_id: str, mode: str = "failed_only") -> WorkflowView:
        """Run an ended workflow's nodes again; see ``Client.retry_workflow``."""
        return self._run(self._client.retry_workflow(workflow_id, mode))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
