"""Middleware for error reporters and tracers (Sentry, Logfire...), and the worker's lifespan.

A ``Middleware`` subclass overrides any of ``on_job_start``, ``on_failure`` and ``on_job_end``,
each plain or ``async``; an instance at the top level of a task module (or given to
``Registry(..., middleware=[...])``) is registered. The hooks run around the handler itself,
in its own task or thread (a sync handler's hooks in its thread, where a reporter's scope
is; async hooks of a sync handler are run on the event loop and waited for), so ``on_failure``
gets the exception object with its traceback. A hook that raises is logged and ignored: it never
fails the job. With no middleware and no lifespan the handlers are not wrapped at all: no cost.

``worker_lifespan`` declares resources shared by the jobs of one worker process (a database
pool, an HTTP client): an async context manager entered when the worker starts and exited when
it stops; what it yields is ``ctx.state`` in every handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from jobq.errors import RetryLater
from jobq.logs import get_logger

if TYPE_CHECKING:
    from jobq.context import JobContext
    from jobq.tasks import Registry, Task

log = get_logger("jobq.hooks")
Outcome = Literal["completed", "failed", "retry", "interrupted"]


@dataclass(frozen=True, slots=True)
class JobEnd:
    """How the handler's run ended, as ``on_job_end`` sees it. ``interrupted``: cancelled (a
    cancel request, a timeout of an async handler, shutdown); ``retry``: it raised RetryLater."""

    outcome: Outcome
    duration_s: float
    error: BaseException | None = None


class Middleware:
    """Override the hooks you need; each may be ``async``. The defaults do nothing."""

    def on_job_start(self, ctx: JobContext) -> Awaitable[None] | None:
        """Before the handler runs (after its payload was validated)."""
        return None

    def on_failure(self, ctx: JobContext, error: BaseException) -> Awaitable[None] | None:
        """The handler raised (RetryLater aside); the job retries or is dead-lettered."""
        return None

    def on_job_end(self, ctx: JobContext, end: JobEnd) -> Awaitable[None] | None:
        """After the handler, however it ended."""
        return None


@dataclass(frozen=True, slots=True)
class Lifespan:
    """A worker's shared resources: ``factory()`` is entered once per worker process."""

    factory: Callable[[], AbstractAsyncContextManager[Any]]


def worker_lifespan(
    factory: Callable[[], AsyncIterator[Any]] | Callable[[], AbstractAsyncContextManager[Any]],
) -> Lifespan:
    """Declare the worker's lifespan: an async generator function yielding once (what it yields
    is ``ctx.state``), or a function returning an async context manager."""
    if inspect.isasyncgenfunction(factory):
        return Lifespan(asynccontextmanager(factory))
    return Lifespan(factory)  # type: ignore[arg-type]


async def open_lifespan(registry: Registry) -> AsyncExitStack:
    """Enter the registry's lifespan (if any), setting ``registry.state``; ``aclose()`` the
    answer to exit it."""
    stack = AsyncExitStack()
    if registry.lifespan is not None:
        registry.state = await stack.enter_async_context(registry.lifespan.factory())
    return stack


async def close_lifespan(stack: AsyncExitStack) -> None:
    """Exit the lifespan; an error there is logged: the worker's jobs are all done by now."""
    try:
        await stack.aclose()
    except Exception:
        log.exception("worker.lifespan_exit_failed")


class Hooks:
    """The middleware of one registry, run around each handler."""

    def __init__(self, middleware: list[Middleware], registry: Registry) -> None:
        self.registry = registry
        self.start = [m.on_job_start for m in middleware if _overrides(m, "on_job_start")]
        self.failure = [m.on_failure for m in middleware if _overrides(m, "on_failure")]
        self.end = [m.on_job_end for m in middleware if _overrides(m, "on_job_end")]

    def wrap(self, task: Task[Any, Any]) -> Task[Any, Any]:
        """``task`` with its handler run inside the hooks (and given ``ctx.state``)."""
        handler: Callable[..., Any] = task.handler
        if inspect.iscoroutinefunction(handler):
            @functools.wraps(handler)
            async def run_async(ctx: JobContext, payload: Any) -> Any:
                ctx.state = self.registry.state
                await _call_async(self.start, ctx)
                started = time.perf_counter()
                try:
                    result = await handler(ctx, payload)
                except asyncio.CancelledError:
                    _fire(self.end, ctx, JobEnd("interrupted", time.perf_counter() - started))
                    raise
                except Exception as exc:
                    end = self._ended(exc, started)
                    if end.outcome == "failed":
                        await _call_async(self.failure, ctx, exc)
                    await _call_async(self.end, ctx, end)
                    raise
                await _call_async(self.end, ctx, JobEnd("completed",
                                                        time.perf_counter() - started))
                return result

            return dataclasses.replace(task, handler=run_async)

        @functools.wraps(handler)
        def run_sync(ctx: JobContext, payload: Any) -> Any:
            ctx.state = self.registry.state
            _call_sync(self.start, ctx)
            started = time.perf_counter()
            try:
                result = handler(ctx, payload)
            except Exception as exc:
                end = self._ended(exc, started)
                if end.outcome == "failed":
                    _call_sync(self.failure, ctx, exc)
                _call_sync(self.end, ctx, end)
                raise
            _call_sync(self.end, ctx, JobEnd("completed", time.perf_counter() - started))
            return result

        return dataclasses.replace(task, handler=run_sync)

    @staticmethod
    def _ended(exc: Exception, started: float) -> JobEnd:
        outcome: Outcome = "retry" if isinstance(exc, RetryLater) else "failed"
        return JobEnd(outcome, time.perf_counter() - started, exc)


def _overrides(m: Middleware, name: str) -> bool:
    return getattr(type(m), name) is not getattr(Middleware, name)


def _failed(ctx: JobContext, hook: Callable[..., Any], exc: BaseException) -> None:
    ctx.log.warning("job.hook_failed", hook=getattr(hook, "__qualname__", repr(hook)),
                    error=f"{type(exc).__name__}: {exc}")


async def _call_async(hooks: list[Callable[..., Any]], ctx: JobContext, *args: Any) -> None:
    """Each hook on the loop (async ones awaited); a failing hook is logged, never raised."""
    for hook in hooks:
        try:
            outcome = hook(ctx, *args)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            _failed(ctx, hook, exc)


def _call_sync(hooks: list[Callable[..., Any]], ctx: JobContext, *args: Any) -> None:
    """Each hook in the handler's thread; an async one on the loop, waited for."""
    for hook in hooks:
        try:
            outcome = hook(ctx, *args)
            if inspect.isawaitable(outcome):
                ctx._on_loop(_awaited(outcome))
        except Exception as exc:
            _failed(ctx, hook, exc)


_pending: set[asyncio.Task[None]] = set()  # end hooks of interrupted jobs, until they finish


def _fire(hooks: list[Callable[..., Any]], ctx: JobContext, end: JobEnd) -> None:
    """End hooks of a handler being cancelled: not awaited there (a cancel must not wait on a
    reporter), run in a task of their own."""
    if hooks:
        task = asyncio.ensure_future(_call_async(hooks, ctx, end))
        _pending.add(task)
        task.add_done_callback(_pending.discard)


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable
