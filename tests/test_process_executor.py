"""The process executor (R26): handlers in child processes of real workers, stopped at their
hard timeout without overlapping their retry, crashes contained with their reason, side effects
at most once across a killed child, children recycled by memory, workers recycled by
``--max-jobs`` with nothing lost, and SIGTERM leaving no process behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures import Proc, events, eventually, job_in, logged, metrics_port, process_env, scrape
from inprocess import in_process_worker
from pydantic import BaseModel
from redis.asyncio import Redis

from jobq.admin import cancel_job
from jobq.client import Client
from jobq.context import JobContext
from jobq.jobs import JobPublic, State
from jobq.settings import Settings
from jobq.tasks import Registry, load_registry, task

QUEUE = "proc-queue"
TASKS = "testtasks,proctasks"
CHILD = "jobq.worker.processes.child"


def client_for(redis: Redis, settings: Settings) -> Client:
    return Client(redis, load_registry(TASKS.split(",")), settings)


async def ended(client: Client, job_id: str) -> JobPublic | None:
    job = await client.get_job(job_id)
    return job if job.state in (State.COMPLETED, State.FAILED) else None


async def all_ended(client: Client, ids: list[str], timeout: float = 30) -> list[JobPublic]:
    async def check() -> list[JobPublic] | None:
        jobs = [await ended(client, i) for i in ids]
        return None if any(j is None for j in jobs) else [j for j in jobs if j]

    return await eventually(check, timeout=timeout, what=f"{len(ids)} jobs to end")


def proc_worker(start_worker: Callable[..., Proc], tmp_path: Path, concurrency: int,
                *args: str, **env: str) -> Proc:
    env = {"JOBQ_TASKS": TASKS, "JOBQ_TEST_DIR": str(tmp_path), "JOBQ_KILL_AFTER_S": "1",
           **env}
    return start_worker(f"{QUEUE}:{concurrency}", *args, **env)


def processes_with(prefix: str) -> list[int]:
    """Every process on this machine whose environment carries the test's key prefix."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if f"JOBQ_KEY_PREFIX={prefix}".encode() in environ and ") Z" not in stat:
            found.append(int(entry.name))
    return found


async def test_hung_and_cpu_looping_handlers_are_killed_at_the_hard_timeout_and_retried_alone(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc], tmp_path: Path,
) -> None:
    client = client_for(redis, settings)
    worker = proc_worker(start_worker, tmp_path, 3)
    hung = (await client.enqueue("proc-hang", "hang", {})).job_id
    spun = (await client.enqueue("proc-spin", "spin", {})).job_id
    oks = [(await client.enqueue("proc-ok", f"ok-{n}", {"n": n})).job_id for n in range(3)]
    oks.append((await client.enqueue("proc-ok-async", "ok-async", {"n": 9})).job_id)
    jobs = await all_ended(client, [hung, spun, *oks])
    for job in jobs[:2]:
        assert job.state is State.COMPLETED, (job.type, job.history)
        assert job.attempts == 2 and job.result == {"attempt": 2}
        first = job.history[0]
        assert first.outcome == "timeout" and "killed at the hard timeout" in (first.error or "")
    assert not (tmp_path / "overlap").exists(), (tmp_path / "overlap").read_text()
    for job in jobs[2:]:
        assert job.state is State.COMPLETED and job.result is not None
        assert job.result["pid"] != worker.pid  # ran in a child
        assert job.progress is not None and job.progress.fraction == 0.5
    port = await metrics_port(worker)
    assert scrape(port)[f'jobq_worker_children_replaced_total{{queue="{QUEUE}",'
                        f'reason="hard_timeout"}}'] == 2


async def test_a_child_that_dies_fails_only_its_attempt_with_the_reason(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc], tmp_path: Path,
) -> None:
    client = client_for(redis, settings)
    worker = proc_worker(start_worker, tmp_path, 2)
    crashes = [(await client.enqueue("proc-crash", f"crash-{n}", {"n": n})).job_id
               for n in (1, 2, 3)]
    soft = (await client.enqueue("proc-soft", "soft", {})).job_id
    effect = (await client.enqueue("proc-effect", "effect", {})).job_id
    oks = [(await client.enqueue("proc-ok", f"ok-{n}", {"n": n})).job_id for n in range(4)]
    jobs = await all_ended(client, [*crashes, soft, effect, *oks])
    reasons = ["SIGSEGV", "exited with code 3", "SIGKILL"]
    for job, reason in zip(jobs[:3], reasons, strict=True):
        assert job.state is State.FAILED and job.attempts == 1
        assert job.history[0].outcome == "failed"
        assert "ChildDied" in (job.history[0].error or "") and reason in (job.history[0].error or "")
    soft_job = jobs[3]
    assert soft_job.state is State.FAILED and soft_job.history[0].outcome == "timeout"
    assert "SoftTimeout" in (soft_job.history[0].error or "")
    assert (tmp_path / f"{soft}.cleaned").exists()  # the handler cleaned up after its timeout
    # Side effect reserved, run, then the child SIGKILLed: the retry skips it (at most once).
    effect_job = jobs[4]
    assert effect_job.state is State.COMPLETED, effect_job.history
    assert effect_job.result == {"ran": False, "attempt": 2}
    assert (tmp_path / "effects").read_text().splitlines() == [effect]
    for job in jobs[5:]:
        assert job.state is State.COMPLETED
    assert worker.popen.poll() is None  # the worker itself never went down


@pytest.mark.any_server  # the child's memory and its recycling are the worker's own
async def test_a_leaking_child_is_recycled_after_the_job_that_crossed_its_memory_limit(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc], tmp_path: Path,
) -> None:
    client = client_for(redis, settings)
    worker = proc_worker(start_worker, tmp_path, 1, JOBQ_CHILD_MAX_RSS_MB="300",
                         JOBQ_CHILD_MAX_JOBS="3")
    sizes = [0, 0, 400, 0, 0, 0, 0]  # MiB each job keeps for ever
    ids = [(await client.enqueue("proc-leak", f"leak-{n}", {"n": size})).job_id
           for n, size in enumerate(sizes)]
    jobs = await all_ended(client, ids)
    pids = [job.result["pid"] if job.result else None for job in jobs]
    assert pids[0] == pids[1] == pids[2], "recycled below the limit"
    assert pids[3] != pids[2], "the child that leaked past the limit ran another job"
    assert pids[3] == pids[4] == pids[5] != pids[6], "not recycled after 3 jobs"
    recycled = await logged(worker, "worker.child_recycled", 2)
    assert [(r["reason"], r["childPid"]) for r in recycled] == [
        ("max_rss", pids[2]), ("max_jobs", pids[5])]


async def test_max_jobs_recycles_the_worker_under_load_and_loses_nothing(
    settings: Settings, redis: Redis, spawn: Callable[..., Proc],
) -> None:
    def start_worker(queue: str, *flags: str) -> Proc:
        args = ["worker", "--metrics-port", "0", "--queue", queue, *flags]
        return spawn(args, process_env(settings, JOBQ_TASKS=TASKS), name="worker")

    client = client_for(redis, settings)
    ids = [(await client.enqueue("noop", f"n-{n}", {"n": n})).job_id for n in range(60)]
    exits = []
    for _ in range(8):
        worker = start_worker("bench-queue:4", "--max-jobs", "20")
        code = await asyncio.to_thread(worker.wait, 30)
        exits.append(code)
        assert (await logged(worker, "worker.recycling"))[0]["reason"] == "max_jobs"
        if all(await asyncio.gather(*(ended(client, i) for i in ids))):
            break
    assert set(exits) == {0} and len(exits) >= 3
    jobs = await all_ended(client, ids, timeout=5)
    assert all(j.state is State.COMPLETED and j.result == {"n": n} for n, j in enumerate(jobs))
    # Handed back, never abandoned to the lease sweep (no attempt ``lost``).
    assert not [h for j in jobs for h in j.history if h.outcome == "lost"]
    # And by memory: a limit below what any process needs recycles at once, exit 0.
    worker = start_worker("bench-queue:1", "--max-rss-mb", "1")
    assert await asyncio.to_thread(worker.wait, 30) == 0
    assert events(worker, "worker.recycling")[0]["reason"] == "max_rss"


async def test_cancel_then_sigterm_with_busy_children_leaves_no_process(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc], tmp_path: Path,
) -> None:
    client = client_for(redis, settings)
    worker = proc_worker(start_worker, tmp_path, 3, JOBQ_SHUTDOWN_GRACE_S="1")
    ids = [(await client.enqueue("proc-busy", f"busy-{n}", {})).job_id for n in range(3)]

    async def all_running() -> bool:
        return all((tmp_path / f"{i}.1.pid").exists() for i in ids)

    await eventually(all_running, what="the jobs to run in children")
    children = [int((tmp_path / f"{i}.1.pid").read_text()) for i in ids]
    assert worker.pid not in children
    assert set(children) <= set(processes_with(settings.key_prefix))
    # A cancel reaches the handler in its child (CancelledError where it sleeps).
    *busy, cancelled = ids
    await cancel_job(client, cancelled, who="test")
    await eventually(lambda: job_in(client, cancelled, State.CANCELLED), what="the cancel")
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 20) == 0
    assert processes_with(settings.key_prefix) == []  # no orphan: worker and children gone
    for job_id in busy:
        job = await client.get_job(job_id)
        assert job.state is State.WAITING and job.history[-1].handedBack, job.history


class Nothing(BaseModel):
    pass


@task("deadline-thread", queue="deadline-queue", payload=Nothing, attempts=1, timeout_s=5.0)
def deadline_thread(ctx: JobContext, payload: Nothing) -> dict[str, Any]:
    """On the thread executor: what the handler is told of its deadline."""
    return {"left": ctx.time_left(), "cancelled": ctx.cancelled}


@pytest.mark.any_server
async def test_a_thread_handler_is_told_its_deadline(settings: Settings, redis: Redis) -> None:
    registry = Registry([deadline_thread])
    client = Client(redis, registry, settings)
    async with in_process_worker(settings, registry, "deadline-queue", 1):
        job_id = (await client.enqueue("deadline-thread", "d", {})).job_id
        job = await eventually(lambda: ended(client, job_id), what="the job to end")
    assert job.state is State.COMPLETED and job.result is not None
    assert 0 < job.result["left"] <= 5.0 and job.result["cancelled"] is False
