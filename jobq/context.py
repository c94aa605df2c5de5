"""What a handler is given besides its payload: who it is, at-most-once side effects (R8), and
a way to report its progress."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from jobq.connection import retrying
from jobq.errors import InvalidPayload
from jobq.keys import PROGRESS_MESSAGE_MAX, RESERVE_RETRY_S, QueueKeys
from jobq.scripts import Scripts, new_nonce
from jobq.settings import Settings

if TYPE_CHECKING:
    from jobq.workflows.inputs import WorkflowInputs
    from jobq.workflows.model import Node, Part

T = TypeVar("T")


@dataclass
class JobContext:
    """Passed to every handler as its first argument."""

    job_id: str
    type: str
    queue: str
    attempt: int
    max_attempts: int
    worker: str
    token: str
    settings: Settings
    log: Any
    _scripts: Scripts
    _keys: QueueKeys
    _loop: asyncio.AbstractEventLoop
    cancelled: bool = False
    """Set when the job was cancelled while running. Async handlers are cancelled outright;
    a sync handler (on a thread, which cannot be interrupted) should check this and return."""
    state: Any = None
    """What the worker's lifespan yielded (``jobq.hooks.worker_lifespan``): resources shared by
    the jobs of one worker process (a database pool, an HTTP client); None without one."""
    deadline: float | None = None
    """``time.monotonic()`` by which this attempt must end (its timeout), None without one. A
    thread cannot be stopped: a sync handler on the thread executor should watch this."""

    def time_left(self) -> float | None:
        """Seconds until ``deadline`` (never below 0), None without a timeout."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    async def side_effect(self, name: str, effect: Callable[[], Awaitable[Any] | Any]) -> bool:
        """Run ``effect`` unless an earlier attempt of this job reserved ``name`` already.

        The reservation is written before the effect runs, so a crash during the effect means
        it is skipped on retry: at most once, never twice. Returns whether it ran.
        """
        if not await self._reserve(name):
            return False
        outcome = effect()
        if inspect.isawaitable(outcome):
            await outcome
        return True

    async def _reserve(self, name: str) -> bool:
        """Write the reservation of effect ``name``; False when an earlier attempt has it.
        An outage (a slot migrating, a failover) is waited out for RESERVE_RETRY_S, the call
        sent again with the same nonce: a copy that ran already answers "reserved" (R22)."""
        nonce = new_nonce()
        async for attempt in retrying(give_up_after_s=RESERVE_RETRY_S, max_wait_s=1.0):
            with attempt:
                reserved = await self._scripts.reserve(
                    self._keys, self.job_id, name, self.token,
                    self.settings.idempotency_retention_s, nonce=nonce)
        if not reserved:
            self.log.info("job.side_effect_skipped", effect=name)
            return False
        self.log.info("job.side_effect_started", effect=name)
        return True

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the job is (``fraction`` from 0 to 1, and an optional message): stored
        on the job, shown in its status view, and pushed at once to long polls and event
        streams waiting on it. Raises LeaseLost when this attempt no longer holds the job."""
        if not 0.0 <= fraction <= 1.0:  # also refuses NaN
            raise InvalidPayload(f"progress fraction must be between 0 and 1, not {fraction!r}")
        await self._scripts.progress(self._keys, self.job_id, self.token, float(fraction),
                                     (message or "")[:PROGRESS_MESSAGE_MAX])

    def progress_blocking(self, fraction: float, message: str | None = None) -> None:
        """``progress`` for sync handlers, which run in a worker thread."""
        self._on_loop(self.progress(fraction, message))

    def side_effect_blocking(self, name: str, effect: Callable[[], Any]) -> bool:
        """``side_effect`` for sync handlers, which run in a worker thread.

        Only the reservation goes through the event loop; ``effect`` runs here, in the
        handler's thread. It may block (a sync HTTP call, say) without stalling every other job
        of the process, and it may call ``progress_blocking``, which waits for the loop: run on
        the loop itself, it would wait for itself for ever."""
        if not self._on_loop(self._reserve(name)):
            return False
        outcome = effect()
        if inspect.isawaitable(outcome):  # an effect returning a coroutine: awaited on the loop
            self._on_loop(_awaited(outcome))
        return True

    async def workflow_inputs(self) -> WorkflowInputs | None:
        """This node's dependencies' results and errors, when the job is a workflow node."""
        from jobq.workflows.inputs import read_inputs  # workflows import the scripts, as here

        return await read_inputs(self._scripts, self._keys, self.job_id)

    def workflow_inputs_blocking(self) -> WorkflowInputs | None:
        """``workflow_inputs`` for sync handlers, which run in a worker thread."""
        return self._on_loop(self.workflow_inputs())

    async def add_workflow_nodes(self, spec: Part | list[Node], *,
                                 waited_by: Sequence[str] = ()) -> dict[str, str]:
        """Add keyed nodes to this node's workflow before it completes (they may depend on
        this node and on existing ones; each ``waited_by`` node, still waiting, also waits on
        them). A retry adding the same keys adds nothing; node key -> job id."""
        from jobq.client import Client
        from jobq.tasks import load_registry
        from jobq.workflows.dynamic import add_nodes

        client = Client(self._scripts.redis, load_registry(self.settings.tasks), self.settings)
        return await add_nodes(client, self._keys, self.job_id, self.token, spec,
                               tuple(waited_by))

    def add_workflow_nodes_blocking(self, spec: Part | list[Node], *,
                                    waited_by: Sequence[str] = ()) -> dict[str, str]:
        """``add_workflow_nodes`` for sync handlers, which run in a worker thread."""
        return self._on_loop(self.add_workflow_nodes(spec, waited_by=waited_by))

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the worker's event loop and wait for it, from a handler thread.

        Called on the loop's own thread this would wait for itself: refused instead."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coroutine.close()
            raise RuntimeError("the *_blocking methods are for sync handlers (on a worker "
                               "thread); an async handler awaits progress / side_effect")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
