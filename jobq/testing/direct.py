"""Level 1: call a task's handler directly, with a test context and no server.

Nothing is skipped that would change what the handler sees: the payload goes through JSON and
the task's model as a producer and a worker would (``Task.validate``, then the worker's
``model_validate``), and the result through the worker's encoding and the task's result type
as a ``JobHandle`` reads it. No "eager mode": a payload that would not survive the trip to
Redis fails here too (the lesson of celery#4008)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.errors import InvalidPayload
from jobq.jobs import dumps, loads
from jobq.logs import get_logger
from jobq.results import encode_result, result_adapter
from jobq.settings import Settings
from jobq.tasks import Task

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")
log = get_logger("jobq.testing")


@dataclass
class TestContext(JobContext):
    """A ``JobContext`` whose side effects, progress and cancel checks are recorded in memory:
    ``side_effect`` runs once per name (a name in ``reserved`` counts as run by an earlier
    attempt), ``progress`` appends to ``progress_reports``; ``cancel()`` sets ``cancelled`` as a
    cancel request would."""

    __test__ = False  # not a pytest test class, whatever its name

    reserved: set[str] = field(default_factory=set)
    side_effects: list[str] = field(default_factory=list)
    """The effects that ran, in order (skipped ones are not listed)."""
    progress_reports: list[tuple[float, str | None]] = field(default_factory=list)

    async def _reserve(self, name: str) -> bool:
        if name in self.reserved:
            self.log.info("job.side_effect_skipped", effect=name)
            return False
        self.reserved.add(name)
        self.side_effects.append(name)
        return True

    async def progress(self, fraction: float, message: str | None = None) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise InvalidPayload(f"progress fraction must be between 0 and 1, not {fraction!r}")
        self.progress_reports.append((float(fraction), message))

    def cancel(self) -> None:
        self.cancelled = True


def test_context(task: Task[Any, Any], *, attempt: int = 1, max_attempts: int | None = None,
                 reserved: set[str] | None = None, state: Any = None,
                 settings: Settings | None = None) -> TestContext:
    """A context for one attempt of ``task``, on the running loop."""
    return TestContext(
        job_id=f"test-{uuid.uuid4().hex[:12]}", type=task.name, queue=task.queue,
        attempt=attempt, max_attempts=max_attempts or task.attempts, worker="test",
        token="test", settings=settings or Settings(), log=log.bind(task=task.name),
        _scripts=None, _keys=None, _loop=asyncio.get_running_loop(),  # type: ignore[arg-type]
        reserved=set(reserved or ()), state=state)


test_context.__test__ = False  # type: ignore[attr-defined]


@dataclass
class TaskRun(Generic[R]):
    """How one direct call went. ``result`` raises the handler's exception if it raised."""

    ctx: TestContext
    value: R | None
    exception: BaseException | None
    result_json: str | None

    @property
    def result(self) -> R:
        if self.exception is not None:
            raise self.exception
        return self.value  # type: ignore[return-value]

    @property
    def side_effects(self) -> list[str]:
        return self.ctx.side_effects

    @property
    def progress(self) -> list[tuple[float, str | None]]:
        return self.ctx.progress_reports


async def run_task(
    task: Task[P, R], payload: P, *, attempt: int = 1, max_attempts: int | None = None,
    reserved: set[str] | None = None, cancelled: bool = False, state: Any = None,
    on_context: Callable[[TestContext], None] | None = None,
) -> TaskRun[R]:
    """Run ``task``'s handler once on ``payload`` as a worker would: an async handler on the
    loop, a sync one on a thread (so its ``*_blocking`` calls work). ``reserved`` names side
    effects an earlier attempt ran; ``cancelled`` starts the attempt cancelled (a sync handler
    sees ``ctx.cancelled``); ``on_context`` sees the context before the handler runs."""
    # The producer's JSON (as Client.send makes it), checked as Client.enqueue checks it ...
    raw = loads(dumps(payload.model_dump(mode="json", warnings=False)))
    task.validate(raw)
    arrived = task.payload.model_validate(raw)  # the worker's parse
    ctx = test_context(task, attempt=attempt, max_attempts=max_attempts, reserved=reserved,
                       state=state)
    ctx.cancelled = cancelled
    if on_context is not None:
        on_context(ctx)
    try:
        if task.is_async:
            returned = await task.handler(ctx, arrived)
        else:
            returned = await asyncio.to_thread(task.handler, ctx, arrived)
        encoded = encode_result(returned)  # a result that is no JSON fails the job, as there
    except Exception as exc:
        return TaskRun(ctx, None, exc, None)
    adapter = result_adapter(task)
    decoded = loads(encoded)
    value = decoded if adapter is None else adapter.validate_python(decoded)
    return TaskRun(ctx, value, None, encoded)
