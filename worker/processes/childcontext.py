"""The ``JobContext`` a handler gets in a child: the same API, its Redis work done by the parent.

The child has no Redis connection. ``progress`` and the reservation of a side effect are calls
to the parent (over the pipe), which runs them with the attempt's lease token as the in-process
path does, so side effects stay at most once (R8) even when the child is killed mid-effect: the
reservation is written before the effect runs.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from jobq.context import JobContext
from jobq.errors import InvalidPayload, LeaseLost
from jobq.keys import PROGRESS_MESSAGE_MAX
from jobq.worker.processes.protocol import encode

ERRORS: dict[str, type[Exception]] = {"LeaseLost": LeaseLost, "InvalidPayload": InvalidPayload}


class Calls:
    """Requests to the parent and their answers, matched by id; usable from any thread."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}

    def call(self, method: str, **args: Any) -> Future[Any]:
        answer: Future[Any] = Future()
        with self._lock:
            call_id = next(self._ids)
            self._pending[call_id] = answer
        self._write(encode({"op": "call", "id": call_id, "method": method, "args": args}))
        return answer

    def answer(self, message: dict[str, Any]) -> None:
        with self._lock:
            answer = self._pending.pop(int(message["id"]), None)
        if answer is None:
            return
        if message.get("error"):
            kind = ERRORS.get(str(message.get("kind")), RuntimeError)
            answer.set_exception(kind(str(message["error"])))
        else:
            answer.set_result(message.get("value"))


@dataclass
class ChildContext(JobContext):
    """A JobContext whose Redis calls go through the parent."""

    _calls: Calls | None = field(default=None, repr=False)

    def _call(self, method: str, **args: Any) -> Future[Any]:
        assert self._calls is not None
        return self._calls.call(method, **args)

    async def _reserve(self, name: str) -> bool:
        return bool(await asyncio.wrap_future(self._call("reserve", name=name)))

    async def progress(self, fraction: float, message: str | None = None) -> None:
        self._check(fraction)
        await asyncio.wrap_future(self._call("progress", fraction=float(fraction),
                                             message=(message or "")[:PROGRESS_MESSAGE_MAX]))

    def progress_blocking(self, fraction: float, message: str | None = None) -> None:
        self._check(fraction)
        self._call("progress", fraction=float(fraction),
                   message=(message or "")[:PROGRESS_MESSAGE_MAX]).result()

    def side_effect_blocking(self, name: str, effect: Callable[[], Any]) -> bool:
        if not self._call("reserve", name=name).result():
            return False
        outcome = effect()
        if inspect.isawaitable(outcome):  # a coroutine from a sync handler: run it here
            asyncio.run(_awaited(outcome))
        return True

    @staticmethod
    def _check(fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise InvalidPayload(f"progress fraction must be between 0 and 1, not {fraction!r}")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
