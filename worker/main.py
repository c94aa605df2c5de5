"""``jobq worker``: wires the queue runners, lease renewer, sweepers and metrics, and shuts
them down in the order R9 needs: stop fetching, let jobs finish within the grace, hand back.

Shutdown never waits without a bound and never relies on a cancellation arriving (see
``jobq.shutdown``): the loops stop on flags, and a watchdog thread forces the exit if the
orderly path still overruns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from typing import TYPE_CHECKING

from jobq.connection import connect, retrying
from jobq.errors import ConfigError
from jobq.health import LoopBeat, serve
from jobq.hooks import close_lifespan, open_lifespan
from jobq.logs import get_logger
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.shutdown import settle, stop_tasks
from jobq.tasks import Registry
from jobq.tracing import quiet, tracing_for
from jobq.worker.leases import LeaseRenewer, LeaseTable
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.processes.recycle import Recycler
from jobq.worker.runner import QueueRunner, QueueSpec
from jobq.worker.sweeper import Sweeper
from jobq.worker.watchdog import AFTER_GRACE_S, ShutdownWatchdog
from jobq.worker.workflows import IntentSweeper, OutboxRelay
from jobq.workflows.metrics import observe_ends

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

log = get_logger("jobq.worker")

FETCH_STOP_S = 1.0  # fetch loops get this long to see the stop flag before being cancelled
FLUSH_WAIT_S = 1.5  # the last completions get this long to be written
TASK_STOP_S = 0.5  # each remaining group of background tasks, at most
RENEWER_STOP_S = 0.5  # the lease thread, at most (a daemon: it cannot keep the process alive)


async def _flush_spans(given: TracerProvider | None, budget_s: float) -> None:
    """Export the finished attempts' spans still buffered (R25), within what is left of the
    shutdown budget (the watchdog ends the process past it); on a thread, so the loop and the
    watchdog keep running. Nothing without tracing."""
    tracing = tracing_for(given)
    provider = None if tracing is None else tracing.provider
    if provider is None:
        return
    from jobq.tracing import setup

    await asyncio.to_thread(setup.flush, provider, max(0.5, min(setup.FLUSH_S, budget_s)))


def parse_queue(text: str) -> QueueSpec:
    """``name[:concurrency]`` as given to ``--queue``."""
    name, _, concurrency = text.partition(":")
    if not name:
        raise ConfigError(f"--queue {text!r}: expected NAME[:CONCURRENCY]")
    try:
        count = int(concurrency) if concurrency else 1
    except ValueError:
        raise ConfigError(f"--queue {text!r}: concurrency must be a whole number") from None
    if not 1 <= count <= 10_000:
        raise ConfigError(f"--queue {text!r}: concurrency must be between 1 and 10000")
    return QueueSpec(name, count)


def make_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


def lease_renewer(
    settings: Settings, leases: LeaseTable, runners: list[QueueRunner],
    loop: asyncio.AbstractEventLoop,
) -> LeaseRenewer:
    """The lease thread, wired to the runners: a lost lease stops the handler of that attempt,
    a cancel request cancels it. The renewer runs on its own thread, so both are handed to the
    event loop."""
    by_queue = {r.spec.name: r for r in runners}
    return LeaseRenewer(
        leases, settings.redis_url, settings.key_prefix, settings.lease_s,
        on_lost=lambda queue, job_id, token: loop.call_soon_threadsafe(
            by_queue[queue].lease_lost, job_id, token),
        on_cancel=lambda queue, job_id, token: loop.call_soon_threadsafe(
            by_queue[queue].cancel_job, job_id, token),
    )


async def run_worker(
    settings: Settings, registry: Registry, specs: list[QueueSpec], metrics_port: int, *,
    tracer_provider: TracerProvider | None = None,
) -> int:
    """Run until SIGTERM. ``tracer_provider``: where attempts' spans go (R25); default the
    global one. Its spans are flushed before the process reports itself stopped."""
    quiet.suppress()  # this task's loops and every task it starts are plumbing (R25)
    unknown = sorted({s.name for s in specs} - set(registry.queues))
    if unknown:
        raise ConfigError(f"no task is registered on queue(s) {', '.join(unknown)} "
                          f"(known: {', '.join(registry.queues)})")
    worker_id = make_worker_id()
    redis = connect(settings.redis_url)
    scripts = Scripts(redis, ack_replicas=settings.ack_replicas,
                      ack_timeout_s=settings.ack_timeout_s)
    async for attempt in retrying(max_wait_s=5.0):
        with attempt:
            await scripts.load()

    resources = await open_lifespan(registry)  # the tasks' shared resources (ctx.state)
    metrics = WorkerMetrics()
    loop_beat = LoopBeat()
    http = serve(metrics.registry, metrics_port, loop_beat)
    leases = LeaseTable()
    runners = [QueueRunner(s, worker_id, settings, registry, scripts, leases, metrics,
                           tracer_provider=tracer_provider)
               for s in specs]
    loop = asyncio.get_running_loop()
    renewer = lease_renewer(settings, leases, runners, loop)
    renewer.start()
    sweepers = [Sweeper(r) for r in runners]
    relays = [OutboxRelay(scripts, settings, s.name) for s in specs]
    intents = IntentSweeper(scripts, settings)
    for driver in (*(r.relay for r in relays), intents.relay):
        observe_ends(driver.wf, metrics.workflow_duration)

    stop = asyncio.Event()
    watchdog = ShutdownWatchdog(settings.shutdown_grace_s + AFTER_GRACE_S, leases, settings, loop)
    watchdog.start()

    def on_signal(signum: int, frame: object) -> None:
        # A plain handler, not loop.add_signal_handler: it runs even while a handler blocks
        # the event loop, so the watchdog is armed whatever the loop is doing.
        watchdog.arm()
        with contextlib.suppress(RuntimeError):  # a signal after the loop has closed
            loop.call_soon_threadsafe(stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    # --max-jobs / --max-rss-mb: the same orderly stop as SIGTERM, then exit 0 (R26).
    def recycle() -> None:
        watchdog.arm()
        stop.set()

    recycler = Recycler(settings, metrics, on_due=recycle)
    for runner in runners:
        runner.job_ended = recycler.job_ended

    fetchers = [asyncio.create_task(r.fetch(), name=f"fetch:{r.spec.name}") for r in runners]
    finishers = [asyncio.create_task(f.run(), name=f"finish:{r.spec.name}:{n}")
                 for r in runners for n, f in enumerate(r.finishers)]
    background = [asyncio.create_task(s.run(), name=f"sweep:{s.runner.spec.name}")
                  for s in sweepers]
    background.append(asyncio.create_task(loop_beat.run(), name="loop-beat"))
    background += [asyncio.create_task(r.run(), name=f"workflows:{r.q.queue}") for r in relays]
    background.append(asyncio.create_task(intents.run(), name="workflow-intents"))
    background.append(asyncio.create_task(recycler.run(), name="recycler"))
    log.info("worker.started", worker=worker_id, metricsPort=http.server_port,
             queues={s.name: s.concurrency for s in specs}, graceS=settings.shutdown_grace_s)

    await stop.wait()
    deadline = loop.time() + settings.shutdown_grace_s
    log.info("worker.stopping", worker=worker_id, graceS=settings.shutdown_grace_s,
             running=sum(len(r.running) for r in runners))
    # Every step below is bounded, so the whole takes the grace plus a few seconds at most;
    # the watchdog ends the process if it still does not finish.
    for runner in runners:
        runner.stop()
    if stuck := await settle(fetchers, FETCH_STOP_S):
        log.warning("worker.fetch_stop_slow", tasks=sorted(stuck))  # cancelling: second means
        await stop_tasks([f for f in fetchers if f.get_name() in stuck], FETCH_STOP_S)
    await asyncio.gather(*(r.drain(deadline) for r in runners))
    for runner in runners:
        for finisher in runner.finishers:
            await finisher.close()
    if unflushed := await settle(finishers, FLUSH_WAIT_S):  # completions written
        log.error("worker.flush_incomplete", tasks=sorted(unflushed))
    # The jobs are done or cancelled: stop renewing first, so that no renewal racing the
    # hand-back reports a lease given back as lost (a renewed lease has 2/3 of its length left).
    if not renewer.stop(RENEWER_STOP_S):
        log.warning("worker.lease_renewer_stuck")
    handed = sum(await asyncio.gather(*(r.hand_back() for r in runners)))
    for sweeper in sweepers:
        sweeper.stop()
    for relay in relays:
        relay.stop()
    intents.stop()
    loop_beat.stop()
    recycler.stop()
    await asyncio.gather(*(s.leave() for s in sweepers))
    left = await settle(background, TASK_STOP_S)
    left |= await stop_tasks([*fetchers, *finishers, *background], TASK_STOP_S)
    if left:
        log.warning("worker.tasks_left_running", tasks=sorted(left))
    http.shutdown()
    await close_lifespan(resources)
    closing = asyncio.create_task(redis.aclose(), name="redis-close")
    await settle([closing], TASK_STOP_S)
    await _flush_spans(tracer_provider, deadline + AFTER_GRACE_S / 2 - loop.time())
    watchdog.disarm()
    log.info("worker.stopped", worker=worker_id, handedBack=handed)
    return 0
