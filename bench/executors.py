"""Executors side by side on a CPU-bound job, and the process executor's per-job cost.

    .venv/bin/python bench/executors.py [--jobs 300] [--noop-jobs 2000] [--skip-celery]
                                        [--skip-bullmq]

One worker "pod" (one worker process and its children) drains a backlog of 20 ms pure-Python
jobs: jobq's thread executor (concurrency 4), jobq's process executor at 2 and 4 children,
Celery's prefork pool at 2 and 4 (Celery pinned in its own virtualenv under ~/.cache/jobq), and
BullMQ's sandboxed processors at 2 and 4 (bench/bullmq's pinned BullMQ; its job burns the same
20 ms of CPU time in JavaScript). Each is timed from the first job sent to the last one done;
CPU is the pod's (worker + children) user+system seconds over that time. Then no-op jobs on
jobq's thread and process executors, for the process executor's per-job overhead.
Prints figures; asserts nothing. Needs a free port for the embedded Valkey only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from jobq.client import Client, JobRequest
from jobq.connection import connect
from jobq.embedded import ServerProcess, valkey_binary
from jobq.settings import Settings
from jobq.tasks import load_registry

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from benchtasks import burn  # noqa: E402

CELERY_VERSION = "5.5.3"
CELERY_VENV = Path(os.environ.get("JOBQ_CACHE_DIR", Path.home() / ".cache/jobq")) / "bench-celery"
BULL = BENCH / "bullmq"
TARGET_S = 0.020  # CPU per job


def calibrate() -> int:
    """Loops of ``burn`` that take TARGET_S of CPU here."""
    loops = 10_000
    while True:
        started = time.process_time()
        burn(loops)
        spent = time.process_time() - started
        if spent > 0.05:
            return int(loops * TARGET_S / spent)
        loops *= 2


def cpu_seconds(root: int) -> float:
    """User+system CPU of ``root`` and every live descendant (clock ticks from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, stack, seen = 0.0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


async def until(check: Callable[[], Awaitable[bool]], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def log_has(log: Path, text: str, count: int = 1) -> bool:
    return log.exists() and log.read_text(errors="replace").count(text) >= count


async def drain(proc: subprocess.Popen[bytes], send: Callable[[], Awaitable[None]],
                done: Callable[[], Awaitable[bool]], jobs: int) -> tuple[float, float]:
    """Jobs/s and the pod's CPU use (cores) while ``send`` then the drain run."""
    cpu0, started = cpu_seconds(proc.pid), time.perf_counter()
    await send()
    await until(done, 600, "the drain")
    wall = time.perf_counter() - started
    return jobs / wall, (cpu_seconds(proc.pid) - cpu0) / wall


def launch(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            cwd=cwd)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def jobq_run(url: str, queue: str, task: str, payload: dict[str, int], jobs: int,
                   executor: str, concurrency: int, logdir: Path) -> tuple[float, float]:
    settings = Settings(redis_url=url, key_prefix=f"ex{uuid.uuid4().hex[:6]}",
                        tasks=["benchtasks"], completed_keep=1_000_000)
    env = dict(os.environ, REDIS_URL=url, JOBQ_KEY_PREFIX=settings.key_prefix,
               JOBQ_TASKS="benchtasks", JOBQ_LOG_LEVEL="warning", JOBQ_COMPLETED_KEEP="1000000",
               PYTHONPATH=str(BENCH))
    log = logdir / f"jobq-{queue}-{executor}-{concurrency}.log"
    proc = launch([sys.executable, "-m", "jobq", "worker", "--queue", f"{queue}:{concurrency}",
                   "--executor", executor, "--metrics-port", "0"],
                  {**env, "JOBQ_LOG_LEVEL": "info"}, log, logdir)
    redis = connect(url)
    client = Client(redis, load_registry(["benchtasks"]), settings)
    try:
        ready = ("worker.child_started", concurrency) if executor == "process" else (
            "worker.started", 1)

        async def started() -> bool:
            return log_has(log, *ready)

        await until(started, 120, f"the {executor} worker")
        tag = uuid.uuid4().hex[:6]

        async def send() -> None:
            requests = [JobRequest(task, f"{tag}-{i}", payload) for i in range(jobs)]
            for at in range(0, jobs, 500):
                await client.enqueue_many(requests[at:at + 500])

        async def done() -> bool:
            return int((await client.queue_counts(queue))["completed"]) >= jobs

        return await drain(proc, send, done, jobs)
    finally:
        stop(proc)
        await redis.aclose()


def celery_ready() -> Path:
    python = CELERY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CELERY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"celery[redis]=={CELERY_VERSION}"],
                   check=True)
    return python


async def counter_run(proc: subprocess.Popen[bytes], url: str, key: str,
                      send_cmd: list[str], env: dict[str, str], jobs: int) -> tuple[float, float]:
    redis = connect(url)
    try:
        async def send() -> None:
            await asyncio.to_thread(subprocess.run, send_cmd, env=env, check=True,
                                    stdout=subprocess.DEVNULL)

        async def done() -> bool:
            return int(await redis.get(key) or 0) >= jobs

        return await drain(proc, send, done, jobs)
    finally:
        stop(proc)
        await redis.aclose()


async def celery_run(python: Path, url: str, loops: int, jobs: int, children: int,
                     logdir: Path) -> tuple[float, float]:
    key = f"celery:{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_COUNTER_KEY=key, PYTHONPATH=str(BENCH))
    log = logdir / f"celery-{children}.log"
    proc = launch([str(python), "-m", "celery", "-A", "celerytasks", "worker", "-P", "prefork",
                   "-c", str(children), "-Q", "cpu", "-l", "info", "--without-gossip",
                   "--without-mingle", "--without-heartbeat"], env, log, BENCH)

    async def ready() -> bool:
        return log_has(log, " ready.")

    await until(ready, 120, "the Celery worker")
    return await counter_run(proc, url, key,
                             [str(python), str(BENCH / "celerytasks.py"), str(jobs), str(loops)],
                             env, jobs)


async def bullmq_run(url: str, jobs: int, children: int, logdir: Path) -> tuple[float, float]:
    key = f"bull:{uuid.uuid4().hex[:6]}"
    queue = f"cpu-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_COUNTER_KEY=key,
               BENCH_CPU_MICROS=str(int(TARGET_S * 1e6)))
    log = logdir / f"bullmq-{children}.log"
    proc = launch(["node", "sandboxed.js", url, queue, str(children)], env, log, BULL)

    async def ready() -> bool:
        return log_has(log, "ready")

    await until(ready, 60, "the BullMQ worker")
    fill = ["node", str(BULL / "bench.js"), "fill", url, queue, str(jobs)]
    return await counter_run(proc, url, key, fill, env, jobs)


def row(label: str, figures: tuple[float, float]) -> None:
    rate, cores = figures
    print(f"{label:<42} {rate:>8.1f} jobs/s   CPU {cores * 100:>5.0f} %", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--noop-jobs", type=int, default=2000)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--skip-bullmq", action="store_true")
    parser.add_argument("--skip-jobq", action="store_true", help="only Celery and BullMQ")
    args = parser.parse_args()
    loops = calibrate()
    print(f"{os.cpu_count()} cores; the 20 ms job = {loops} loops of bench/benchtasks.burn; "
          f"{args.jobs} jobs per run, one worker pod each", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(valkey_binary(), Path(tmp) / "data")
        server.start()
        logdir = Path(tmp)
        try:
            url = server.url
            cpu = {"loops": loops}
            if not args.skip_jobq:
                row("jobq thread executor, concurrency 4",
                    await jobq_run(url, "cpu-queue", "cpu", cpu, args.jobs, "thread", 4, logdir))
                for n in (2, 4):
                    row(f"jobq process executor, {n} children",
                        await jobq_run(url, "cpu-queue", "cpu", cpu, args.jobs, "process", n,
                                       logdir))
            if not args.skip_celery:
                python = celery_ready()
                for n in (2, 4):
                    row(f"Celery {CELERY_VERSION} prefork, {n} children",
                        await celery_run(python, url, loops, args.jobs, n, logdir))
            if not args.skip_bullmq:
                from sidebyside import install_bullmq

                install_bullmq()
                for n in (2, 4):
                    row(f"BullMQ sandboxed processors, {n} children",
                        await bullmq_run(url, args.jobs, n, logdir))
            if args.skip_jobq:
                return
            print(f"\nno-op jobs ({args.noop_jobs}), concurrency 4: per-job cost", flush=True)
            thread = await jobq_run(url, "bench-queue", "noop", {"n": 0}, args.noop_jobs,
                                    "thread", 4, logdir)
            process = await jobq_run(url, "bench-queue", "noop", {"n": 0}, args.noop_jobs,
                                     "process", 4, logdir)
            row("jobq thread executor (in-process)", thread)
            row("jobq process executor, 4 children", process)
            extra = 1 / process[0] - 1 / thread[0]
            cpu_extra = process[1] / process[0] - thread[1] / thread[0]
            print(f"process executor overhead: {extra * 1e3:.2f} ms wall per job at concurrency "
                  f"4, {cpu_extra * 1e3:.2f} ms CPU per job", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
