"""The operator's loops stop on a flag they check every turn, with every wait bounded: stopping
must not depend on one cancellation arriving (on Python 3.11 ``asyncio.wait_for`` can swallow
one, CPython gh-86296). Real loops (schedule firing, autoscaling, peering) with a real Redis;
the Kubernetes client is real too, and never reached: the loops wait for the peering."""

from __future__ import annotations

import asyncio
import functools

from kubernetes import client as k8s
from redis.asyncio import Redis

from jobq.client import Client
from jobq.operator.autoscale import autoscale_deployment
from jobq.operator.context import LoopSignals, ObjectLoops, OperatorContext
from jobq.operator.kube import Kube
from jobq.operator.metrics import OperatorMetrics
from jobq.operator.peering import Peering
from jobq.operator.schedules import run_schedule
from jobq.operator.waits import wait_any
from jobq.settings import Settings
from jobq.tasks import Registry

BOUND_S = 5.0  # well above the loops' longest wait (1 s for the peering), far below "never"


async def stubborn(signals: LoopSignals) -> None:
    """A loop that loses every cancellation, as gh-86296 can make any loop lose one."""
    while not signals.stopping:
        try:
            await signals.nap(0.01)
        except asyncio.CancelledError:
            continue


async def test_stop_all_ends_loops_that_swallow_their_cancellation() -> None:
    loops = ObjectLoops()
    for i in range(3):
        loops.ensure(("Test", str(i)), stubborn)
    tasks = [task for task, _ in loops.tasks.values()]
    await asyncio.sleep(0.05)
    async with asyncio.timeout(BOUND_S):
        await loops.stop_all(grace_s=1.0)
    assert all(task.done() for task in tasks)
    assert not loops.tasks


async def test_stopping_one_loop_ends_it_even_if_the_cancellation_is_lost() -> None:
    loops = ObjectLoops()
    loops.ensure(("Test", "a"), stubborn)
    loops.ensure(("Test", "b"), stubborn)
    task_a, task_b = loops.tasks[("Test", "a")][0], loops.tasks[("Test", "b")][0]
    await asyncio.sleep(0.05)
    loops.stop(("Test", "a"))
    async with asyncio.timeout(BOUND_S):
        await asyncio.wait({task_a})
    assert task_a.done() and not task_b.done()
    await loops.stop_all(grace_s=1.0)


async def test_real_loops_end_on_their_flag_alone_while_waiting_for_the_peering(
    settings: Settings, registry: Registry, redis: Redis
) -> None:
    """No cancellation at all: the flag ends each loop within its bounded wait."""
    peering = Peering("me", 10, standalone=False, name="jobq")  # never active: nothing streamed
    ctx = OperatorContext(
        settings, registry, redis, Client(redis, registry, settings),
        Kube(k8s.ApiClient()), OperatorMetrics(), peering,
    )
    stop = asyncio.Event()
    starts = {
        "schedule": functools.partial(run_schedule, ctx, "ns", "s"),
        "autoscale": functools.partial(autoscale_deployment, ctx, "ns", "d"),
    }
    signals = {what: LoopSignals() for what in starts}
    tasks = [asyncio.create_task(start(signals[what])) for what, start in starts.items()]
    tasks.append(asyncio.create_task(peering.run(stop)))
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in tasks)
    for each in signals.values():
        each.request_stop()
    stop.set()
    async with asyncio.timeout(BOUND_S):
        await asyncio.gather(*tasks)


async def test_wait_any_is_bounded_and_passes_cancellation_on() -> None:
    event = asyncio.Event()
    assert not await wait_any([event], 0.01)
    assert not await wait_any([], 0.01)
    event.set()
    assert await wait_any([asyncio.Event(), event], 10.0)
    waiting = asyncio.create_task(wait_any([asyncio.Event()], 60.0))
    await asyncio.sleep(0.01)
    waiting.cancel()
    async with asyncio.timeout(BOUND_S):
        await asyncio.wait({waiting})
    assert waiting.cancelled()
