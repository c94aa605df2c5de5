"""Declaring tasks and collecting them into a registry the API and workers are given."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ValidationError

from jobq.errors import ConfigError, InvalidPayload, UnknownTask
from jobq.flow import FlowFields, KeyFunction, RateLimit, check_priority, flow_fields
from jobq.jobs import Backoff
from jobq.keys import DEFAULT_ATTEMPTS, DEFAULT_PRIORITY, QueueKeys

if TYPE_CHECKING:
    from jobq.context import JobContext

NO_TASKS = ("no tasks configured: set JOBQ_TASKS to the module(s) that declare your tasks "
            "(JOBQ_TASKS=jobq.demo for the demo tasks)")

Handler = Callable[["JobContext", Any], Awaitable[Any] | Any]


@dataclass(frozen=True, slots=True)
class Task:
    """A task type: its name, queue, payload model, retry policy, flow control and handler."""

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
    trace_propagation: str | None = None
    """This task's ``link`` / ``child`` / ``none`` (R25); None = the worker's setting."""
    is_async: bool = field(init=False, repr=False, compare=False)
    """Whether the handler is a coroutine function (looked up once: the worker asks per job)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))

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


def task(
    name: str,
    *,
    queue: str,
    payload: type[BaseModel],
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: Backoff | None = None,
    timeout_s: float | None = None,
    priority: int = DEFAULT_PRIORITY,
    rate_limit: RateLimit | str | None = None,
    rate_key: KeyFunction | None = None,
    concurrency_limit: int | None = None,
    concurrency_key: KeyFunction | None = None,
    trace_propagation: str | None = None,
) -> Callable[[Handler], Task]:
    """Declare a task: ``@task("welcome-email", queue="email-queue", payload=WelcomeEmail)``.

    Flow control (R17): ``priority`` (0-9, higher first) is the default of its jobs;
    ``rate_limit`` (``RateLimit(10, 1.0)`` or ``"10/1s"``) caps how many of its jobs start per
    period and ``concurrency_limit`` how many run at once, across every worker: for all its
    jobs together, or per ``rate_key`` / ``concurrency_key``, a function of the validated
    payload (``lambda p: p.tenant``) evaluated where the job is created.

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

    if trace_propagation is not None:
        from jobq.tracing import check_propagation

        check_propagation(trace_propagation)

    def declare(handler: Handler) -> Task:
        return Task(name, queue, payload, handler, attempts, backoff or Backoff(), timeout_s,
                    priority, rate, rate_key, concurrency_limit, concurrency_key,
                    trace_propagation)

    return declare


class Registry:
    """The task types one process knows, by name and by queue."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self._by_name: dict[str, Task] = {}
        for t in tasks:
            if t.name in self._by_name and self._by_name[t.name] is not t:
                raise ConfigError(f"task {t.name!r} is declared twice")
            self._by_name[t.name] = t

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
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import task module {name!r}: {exc}") from exc
        found.extend(v for v in vars(module).values() if isinstance(v, Task))
    if not found:
        raise ConfigError(f"no tasks found in {', '.join(names)}")
    return Registry(found)
