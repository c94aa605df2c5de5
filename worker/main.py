"""``jobq worker``: wires the queue runners, lease renewer, sweepers and metrics, and shuts
them down in the order R9 needs: stop fetching, let jobs finish within the grace, hand back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid

from jobq.connection import connect, retrying
from jobq.errors import ConfigError
from jobq.health import LoopBeat, serve
from jobq.logs import get_logger
from jobq.scripts import Scripts
from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.worker.leases import LeaseRenewer, LeaseTable
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.runner import QueueRunner, QueueSpec
from jobq.worker.sweeper import Sweeper

log = get_logger("jobq.worker")


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


async def run_worker(
    settings: Settings, registry: Registry, specs: list[QueueSpec], metrics_port: int
) -> int:
    unknown = sorted({s.name for s in specs} - set(registry.queues))
    if unknown:
        raise ConfigError(f"no task is registered on queue(s) {', '.join(unknown)} "
                          f"(known: {', '.join(registry.queues)})")
    worker_id = make_worker_id()
    redis = connect(settings.redis_url)
    scripts = Scripts(redis)
    async for attempt in retrying(max_wait_s=5.0):
        with attempt:
            await scripts.load()

    metrics = WorkerMetrics()
    loop_beat = LoopBeat()
    http = serve(metrics.registry, metrics_port, loop_beat)
    leases = LeaseTable()
    runners = [QueueRunner(s, worker_id, settings, registry, scripts, leases, metrics)
               for s in specs]
    by_queue = {r.spec.name: r for r in runners}
    loop = asyncio.get_running_loop()
    renewer = LeaseRenewer(
        leases, settings.redis_url, settings.key_prefix, settings.lease_s,
        on_lost=lambda queue, job_id: log.warning("job.lease_lost", queue=queue, jobId=job_id),
        # The renewer runs on its own thread: hand the cancel to the event loop.
        on_cancel=lambda queue, job_id: loop.call_soon_threadsafe(
            by_queue[queue].cancel_job, job_id),
    )
    renewer.start()
    sweepers = [Sweeper(r) for r in runners]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    fetchers = [asyncio.create_task(r.fetch(), name=f"fetch:{r.spec.name}") for r in runners]
    background = [asyncio.create_task(r.finisher.run()) for r in runners]
    background += [asyncio.create_task(s.run()) for s in sweepers]
    background.append(asyncio.create_task(loop_beat.run()))
    log.info("worker.started", worker=worker_id, metricsPort=http.server_port,
             queues={s.name: s.concurrency for s in specs}, graceS=settings.shutdown_grace_s)

    await stop.wait()
    log.info("worker.stopping", worker=worker_id, graceS=settings.shutdown_grace_s,
             running=sum(len(r.running) for r in runners))
    for fetcher in fetchers:
        fetcher.cancel()
    await asyncio.gather(*fetchers, return_exceptions=True)
    await asyncio.gather(*(r.drain(settings.shutdown_grace_s) for r in runners))
    for runner in runners:
        await runner.finisher.close()
    await asyncio.gather(*background[: len(runners)], return_exceptions=True)  # acks flushed
    handed = sum([await r.hand_back() for r in runners])
    for sweeper in sweepers:
        await sweeper.leave()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    renewer.stop()
    http.shutdown()
    await redis.aclose()
    log.info("worker.stopped", worker=worker_id, handedBack=handed)
    return 0
