"""Declaring tasks and collecting them into a registry the API and workers are given."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

import orjson
from pydantic import BaseModel, ValidationError
from typing_extensions import TypeVar

from jobq.errors import ConfigError, InvalidPayload, UnknownTask
from jobq.flow import FlowFields, KeyFunction, RateLimit, check_priority, flow_fields
from jobq.hooks import Hooks, Lifespan, Middleware
from jobq.jobs import Backoff
from jobq.keys import DEFAULT_ATTEMPTS, DEFAULT_PRIORITY, QueueKeys

if TYPE_CHECKING:
    from jobq.client import Client
    from jobq.context import JobContext
    from jobq.results import JobHandle, SyncJobHandle
    from jobq.sync import SyncClient

NO_TASKS = ("no tasks configured: set JOBQ_TASKS to the module(s) that declare your tasks "
            "(JOBQ_TASKS=jobq.demo for the demo tasks)")

Handler = Callable[["JobContext", Any], Awaitable[Any] | Any]
P = TypeVar("P", bound=BaseModel, default=BaseModel)  # a task's payload model
R = TypeVar("R", default=Any)  # what its handler returns (its result, once decoded)
R2 = TypeVar("R2")
Executor = Literal["thread", "process"]
EXECUTORS: tuple[Executor, ...] = ("thread", "process")


@dataclass(frozen=True, slots=True)
class Task(Generic[P, R]):
    """A task type: its name, queue, payload model, retry policy, flow control and handler.

    Typed by its payload model ``P`` and result ``R``: ``await task.enqueue(client, key,
    P(...))`` gives a ``JobHandle[R]`` whose ``result()`` is an ``R`` (``jobq.results``)."""

    name: str
    queue: str
    payload: type[BaseModel]
    handler: Handler
    attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = field(default_factory=Backoff)
    timeout_s: float | None = None
    priority: int = DEFAULT_PRIORITY
    rate_limit: RateLimit | None = None
    rate_key: KeyFunction | None = None
    concurrency_limit: int | None = None
    concurrency_key: KeyFunction | None = None
    result: type[R] | None = None
    """The result's type (a pydantic model, or any type pydantic validates), which a
    ``JobHandle`` validates the stored result against; None: the handler's return annotation
    when it resolves, else the result as decoded JSON."""
    executor: Executor | None = None
    """Where the handler runs: "thread" (in the worker: sync on a thread, async on its loop),
    "process" (a child process of the worker), None = the worker's ``--executor``."""
    trace_propagation: str | None = None
    """This task's ``link`` / ``child`` / ``none`` (R25); None = the worker's setting."""
    is_async: bool = field(init=False, repr=False, compare=False)
    """Whether the handler is a coroutine function (looked up once: the worker asks per job)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))

    @overload
    async def enqueue(
        self, client: Client, idempotency_key: str, payload: P, *, attempts: int | None = None,
        backoff: Backoff | None = None, delay_s: float = 0.0, priority: int | None = None,
    ) -> JobHandle[R]: ...

    @overload
    def enqueue(
        self, client: SyncClient, idempotency_key: str, payload: P, *,
        attempts: int | None = None, backoff: Backoff | None = None, delay_s: float = 0.0,
        priority: int | None = None,
    ) -> SyncJobHandle[R]: ...

    def enqueue(
        self, client: Client | SyncClient, idempotency_key: str, payload: P, *,
        attempts: int | None = None, backoff: Backoff | None = None, delay_s: float = 0.0,
        priority: int | None = None,
    ) -> Awaitable[JobHandle[R]] | SyncJobHandle[R]:
        """Create a job of this task once per idempotency key (``Client.enqueue``), with a
        payload of its own model: a handle on the job, typed by this task's result. With a
        ``SyncClient`` it blocks and answers a ``SyncJobHandle``."""
        return client.send(self, idempotency_key, payload, attempts=attempts, backoff=backoff,
                           delay_s=delay_s, priority=priority)

    def flow(self, q: QueueKeys, model: BaseModel) -> FlowFields:
        """The limits one job of this task counts against, keyed from its validated payload."""
        return flow_fields(q, self.name, model, self.rate_limit, self.rate_key,
                           self.concurrency_limit, self.concurrency_key)

    def validate(self, payload: object) -> BaseModel:
        """Check a payload against the task's model before anything is written: strictly, as
        JSON (``"5"`` or ``true`` is no number; ISO dates, enums by value and lists for
        tuples are fine; ``3.0`` is the integer 3, as JSON Schema has it), so what is accepted
        is what the API's schema says."""
        if not isinstance(payload, dict):
            raise InvalidPayload("payload must be a JSON object")
        try:
            return self.payload.model_validate_json(orjson.dumps(_integral(payload)), strict=True)
        except orjson.JSONEncodeError as exc:
            raise InvalidPayload(f"payload is not JSON: {exc}") from None
        except ValidationError as exc:
            details: list[dict[str, object]] = [
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_context=False)
            ]
            raise InvalidPayload(f"payload is invalid for task {self.name!r}", details) from None


INT64 = 2**63  # integral floats beyond this stay floats (JSON encoders refuse bigger ints)


def _integral(value: Any) -> Any:
    """``value`` with every integral float (``3.0``) as an int: one JSON number either way,
    and strict validation would refuse ``3.0`` for an ``int`` field."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < INT64 else value
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


class Declare(Generic[P, R]):
    """What ``task(..., result=...)`` returns: a decorator whose handler must take the payload
    model and return the result type (async or not)."""

    def __init__(self, make: Callable[[Handler], Task[Any, Any]]) -> None:
        self._make = make

    @overload
    def __call__(self, handler: Callable[[JobContext, P], Coroutine[Any, Any, R]]) -> Task[P, R]:
        ...

    @overload
    def __call__(self, handler: Callable[[JobContext, P], R]) -> Task[P, R]: ...

    def __call__(self, handler: Handler) -> Task[P, R]:
        return self._make(handler)


class DeclareInferred(Generic[P]):
    """What ``task(...)`` without ``result`` returns: the result type is the handler's."""

    def __init__(self, make: Callable[[Handler], Task[Any, Any]]) -> None:
        self._make = make

    @overload
    def __call__(self, handler: Callable[[JobContext, P], Coroutine[Any, Any, R2]]
                 ) -> Task[P, R2]: ...

    @overload
    def __call__(self, handler: Callable[[JobContext, P], R2]) -> Task[P, R2]: ...

    def __call__(self, handler: Handler) -> Task[P, Any]:
        return self._make(handler)


@overload
def task(
    name: str, *, queue: str, payload: type[P], result: type[R],
    attempts: int = ..., backoff: Backoff | None = ..., timeout_s: float | None = ...,
    priority: int = ..., rate_limit: RateLimit | str | None = ...,
    rate_key: KeyFunction | None = ..., concurrency_limit: int | None = ...,
    concurrency_key: KeyFunction | None = ..., executor: Executor | None = ...,
    trace_propagation: str | None = ...,
) -> Declare[P, R]: ...


@overload
def task(
    name: str, *, queue: str, payload: type[P], result: None = None,
    attempts: int = ..., backoff: Backoff | None = ..., timeout_s: float | None = ...,
    priority: int = ..., rate_limit: RateLimit | str | None = ...,
    rate_key: KeyFunction | None = ..., concurrency_limit: int | None = ...,
    concurrency_key: KeyFunction | None = ..., executor: Executor | None = ...,
    trace_propagation: str | None = ...,
) -> DeclareInferred[P]: ...


def task(
    name: str,
    *,
    queue: str,
    payload: type[BaseModel],
    result: type[Any] | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: Backoff | None = None,
    timeout_s: float | None = None,
    priority: int = DEFAULT_PRIORITY,
    rate_limit: RateLimit | str | None = None,
    rate_key: KeyFunction | None = None,
    concurrency_limit: int | None = None,
    concurrency_key: KeyFunction | None = None,
    executor: Executor | None = None,
    trace_propagation: str | None = None,
) -> Declare[Any, Any] | DeclareInferred[Any]:
    """Declare a task: ``@task("welcome-email", queue="email-queue", payload=WelcomeEmail)``.

    ``result`` (a model or type) is what the handler returns and what a ``JobHandle`` gives
    back, validated; without it the handler's return annotation serves (``jobq.results``).

    Flow control (R17): ``priority`` (0-9, higher first) is the default of its jobs;
    ``rate_limit`` (``RateLimit(10, 1.0)`` or ``"10/1s"``) caps how many of its jobs start per
    period and ``concurrency_limit`` how many run at once, across every worker: for all its
    jobs together, or per ``rate_key`` / ``concurrency_key``, a function of the validated
    payload (``lambda p: p.tenant``) evaluated where the job is created.

    ``executor="process"`` runs the handler in a child process of the worker (timeouts that
    stop it, crash and memory containment, every core for CPU-bound work); ``"thread"`` in the
    worker itself; unset, the worker's ``--executor`` decides.

    ``trace_propagation`` (``link`` / ``child`` / ``none``) overrides the worker's
    ``JOBQ_TRACE_PROPAGATION`` for this task's attempts (R25).
    """
    if attempts < 1:
        raise ConfigError(f"task {name!r}: attempts must be at least 1")
    try:
        check_priority(priority)
    except InvalidPayload as exc:
        raise ConfigError(f"task {name!r}: {exc}") from None
    rate = RateLimit.parse(rate_limit) if isinstance(rate_limit, str) else rate_limit
    if concurrency_limit is not None and concurrency_limit < 1:
        raise ConfigError(f"task {name!r}: concurrency_limit must be at least 1")
    if rate_key is not None and rate is None:
        raise ConfigError(f"task {name!r}: rate_key needs a rate_limit")
    if concurrency_key is not None and concurrency_limit is None:
        raise ConfigError(f"task {name!r}: concurrency_key needs a concurrency_limit")

    if executor is not None and executor not in EXECUTORS:
        raise ConfigError(f"task {name!r}: executor must be one of {', '.join(EXECUTORS)}")

    if trace_propagation is not None:
        from jobq.tracing import check_propagation

        check_propagation(trace_propagation)

    def declare(handler: Handler) -> Task[Any, Any]:
        return Task(name, queue, payload, handler, attempts, backoff or Backoff(), timeout_s,
                    priority, rate, rate_key, concurrency_limit, concurrency_key, result,
                    executor, trace_propagation)

    return Declare(declare) if result is not None else DeclareInferred(declare)


class Registry:
    """The task types one process knows, by name and by queue; with the middleware and the
    worker lifespan (``jobq.hooks``) their handlers run in."""

    def __init__(self, tasks: Iterable[Task], *, middleware: Iterable[Middleware] = (),
                 lifespan: Lifespan | None = None) -> None:
        self.middleware = list(middleware)
        self.lifespan = lifespan
        self.state: Any = None
        """What the lifespan yielded, once entered (``jobq.hooks.open_lifespan``)."""
        # No middleware and no lifespan: the handlers run as declared, nothing in between.
        hooks = Hooks(self.middleware, self) if self.middleware or lifespan else None
        declared: dict[str, Task] = {}
        self._by_name: dict[str, Task] = {}
        for t in tasks:
            if t.name in declared and declared[t.name] is not t:
                raise ConfigError(f"task {t.name!r} is declared twice")
            declared[t.name] = t
            self._by_name[t.name] = hooks.wrap(t) if hooks else t

    def __iter__(self) -> Iterator[Task]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Task:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise UnknownTask(f"unknown task type {name!r} (known: {known})") from None

    @property
    def queues(self) -> list[str]:
        return sorted({t.queue for t in self})


def load_registry(modules: Iterable[str]) -> Registry:
    """Import the task modules and collect their tasks. Naming none is an error, not a fallback
    to the demo tasks: an API that silently accepted ``welcome-email`` would hide the mistake."""
    names = list(modules)
    if not names:
        raise ConfigError(NO_TASKS)
    found: list[Task] = []
    middleware: list[Middleware] = []
    lifespans: list[Lifespan] = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import task module {name!r}: {exc}") from exc
        found.extend(v for v in vars(module).values() if isinstance(v, Task))
        middleware.extend(v for v in vars(module).values() if isinstance(v, Middleware))
        lifespans.extend(v for v in vars(module).values() if isinstance(v, Lifespan))
    if not found:
        raise ConfigError(f"no tasks found in {', '.join(names)}")
    if len(set(lifespans)) > 1:
        raise ConfigError(f"more than one worker_lifespan in {', '.join(names)}: combine them")
    return Registry(found, middleware=dict.fromkeys(middleware),
                    lifespan=lifespans[0] if lifespans else None)
