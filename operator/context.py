"""What every handler and loop of one operator process shares; built once in ``run_operator``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from jobq.client import Client
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.operator.kube import Kube
from jobq.operator.metrics import OperatorMetrics
from jobq.operator.peering import Peering
from jobq.settings import Settings
from jobq.tasks import Registry

log = get_logger("jobq.operator")

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class ObjectLoops:
    """One long-running task per watched object, with a wake-up event for changes.

    These play the part of kopf daemons without their finalizers (see jobq.operator.peering).
    """

    tasks: dict[tuple[str, ...], tuple[asyncio.Task[None], asyncio.Event]] = field(
        default_factory=dict
    )

    def ensure(self, key: tuple[str, ...], start: Loop, *, wake: bool = False) -> None:
        """Start the loop of ``key`` unless it runs; wake it if asked."""
        found = self.tasks.get(key)
        if found is not None and not found[0].done():
            if wake:
                found[1].set()
            return
        event = asyncio.Event()
        task = asyncio.create_task(self._guarded(key, start, event), name="/".join(key))
        self.tasks[key] = (task, event)

    async def _guarded(self, key: tuple[str, ...], start: Loop, event: asyncio.Event) -> None:
        try:
            await start(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("operator.loop_crashed", key="/".join(key))
        finally:
            found = self.tasks.get(key)
            if found is not None and found[0] is asyncio.current_task():
                del self.tasks[key]

    def stop(self, key: tuple[str, ...]) -> None:
        found = self.tasks.pop(key, None)
        if found is not None:
            found[0].cancel()

    async def stop_all(self) -> None:
        tasks = [task for task, _ in self.tasks.values()]
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class OperatorContext:
    settings: Settings
    registry: Registry
    redis: Redis
    client: Client
    kube: Kube
    metrics: OperatorMetrics
    peering: Peering
    loops: ObjectLoops = field(default_factory=ObjectLoops)
    clock: Callable[[], float] = time.time

    def queue_keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.settings.key_prefix, queue)
