"""What every handler and loop of one operator process shares; built once in ``run_operator``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import kopf

from jobq.client import Client
from jobq.connection import Redis
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.operator.kube import Kube
from jobq.operator.metrics import OperatorMetrics
from jobq.operator.peering import Peering
from jobq.operator.waits import wait_any
from jobq.settings import Settings
from jobq.tasks import Registry

log = get_logger("jobq.operator")

STOP_GRACE_S = 5.0  # how long stop_all lets loops end on their flag before cancelling them


@dataclass
class LoopSignals:
    """How the operator talks to one per-object loop. ``stop`` asks it to end: the loop checks
    it every turn, so ending does not depend on a cancellation arriving (cancelling is only the
    second means). ``wake`` asks for a look now; stopping also wakes the loop."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    async def nap(self, seconds: float) -> None:
        """Until woken or stopped, for ``seconds`` at most."""
        await wait_any([self.wake], seconds)


Loop = Callable[[LoopSignals], Coroutine[Any, Any, None]]


@dataclass
class ObjectLoops:
    """One long-running task per watched object, with its wake-up and stop signals.

    These play the part of kopf daemons without their finalizers (see jobq.operator.main).
    """

    tasks: dict[tuple[str, ...], tuple[asyncio.Task[None], LoopSignals]] = field(
        default_factory=dict
    )

    def ensure(self, key: tuple[str, ...], start: Loop, *, wake: bool = False) -> None:
        """Start the loop of ``key`` unless it runs; wake it if asked."""
        found = self.tasks.get(key)
        if found is not None and not found[0].done():
            if wake:
                found[1].wake.set()
            return
        signals = LoopSignals()
        task = asyncio.create_task(self._guarded(key, start, signals), name="/".join(key))
        self.tasks[key] = (task, signals)

    async def _guarded(self, key: tuple[str, ...], start: Loop, signals: LoopSignals) -> None:
        try:
            await start(signals)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("operator.loop_crashed", key="/".join(key))
        finally:
            found = self.tasks.get(key)
            if found is not None and found[0] is asyncio.current_task():
                del self.tasks[key]

    def stop(self, key: tuple[str, ...]) -> None:
        """End the loop of ``key``: its stop flag, and a cancellation as the second means."""
        found = self.tasks.pop(key, None)
        if found is not None:
            found[1].request_stop()
            found[0].cancel()

    async def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every loop: the flag first, a cancellation for any still running after
        ``grace_s``; returns after at most twice that, naming loops that would not end."""
        found = list(self.tasks.values())
        self.tasks.clear()
        for _, signals in found:
            signals.request_stop()
        tasks = [task for task, _ in found if not task.done()]
        if not tasks:
            return
        _, running = await asyncio.wait(tasks, timeout=grace_s)
        for task in running:
            task.cancel()
        if running:
            _, stuck = await asyncio.wait(running, timeout=grace_s)
            if stuck:
                log.warning("operator.loops_stuck", loops=sorted(t.get_name() for t in stuck))


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
    deployments: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
    """kopf's index of the autoscaled Deployments (set when kopf starts), by (namespace, name)."""
    clock: Callable[[], float] = time.time

    def queue_keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.settings.key_prefix, queue)
