"""``jobq scheduler`` remembers the bucket it fired: a restart (a new process, or a new
``run_schedule``) later than the idempotency record's life into a long bucket does not enqueue
that bucket again (review d0f8ead, finding 5, scaled down: retention 1 s, completed_keep=0,
``@monthly``); schedules whose names hold ``:`` or ``{`` keep marks of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from fixtures import Proc, events, eventually, logged, process_env

from jobq import keys
from jobq.client import Client
from jobq.connection import Redis
from jobq.schedule import ScheduleSpec, bucket_idempotency_key
from jobq.scheduler import run_schedule
from jobq.settings import Settings

QUEUE = "bench-queue"  # the queue of the "noop" task
MONTHLY = {"name": "monthly", "type": "noop", "schedule": "@monthly", "payload": {"n": 1}}
SHORT_LIFE = {"JOBQ_IDEMPOTENCY_RETENTION_S": "1", "JOBQ_COMPLETED_KEEP": "0"}


async def gone(redis: Redis, *names: str) -> bool:
    """None of ``names`` exists (one EXISTS each: on a cluster they may sit in other slots)."""
    return not any(await asyncio.gather(*(redis.exists(name) for name in names)))


async def test_new_process_does_not_fire_the_bucket_again_after_its_records_expired(
    spawn: Callable[..., Proc], start_worker: Callable[..., Proc], settings: Settings,
    client: Client, redis: Redis, tmp_path: Path,
) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml.safe_dump({"schedules": [MONTHLY]}))
    env = process_env(settings, **SHORT_LIFE)
    args = ["scheduler", "--file", str(path)]
    first = spawn(args, env, name="first")
    [fired] = await logged(first, "schedule.fired")
    assert not fired["duplicate"]
    first.terminate()
    assert first.wait(15) == 0, first.output()

    # The job runs and its record is trimmed at once; its idempotency record expires in 1 s.
    worker = start_worker(QUEUE, **SHORT_LIFE)
    q = client.keys(QUEUE)
    job_id = fired["jobId"]
    await eventually(lambda: gone(redis, q.job(job_id), q.idempotency(job_id)),
                     what="the job and its idempotency record to be gone")
    worker.terminate()
    assert worker.wait(15) == 0, worker.output()

    restarted = spawn(args, env, name="restarted")

    async def decided() -> list[dict[str, Any]]:
        return events(restarted, "schedule.fired") + events(restarted, "schedule.already_fired")

    [decision] = await eventually(decided, what="the restarted scheduler to decide")
    assert decision["event"] == "schedule.already_fired", decision
    assert decision["bucket"] == fired["bucket"]
    assert await gone(redis, q.job(job_id))
    assert (await client.queue_counts(QUEUE))["waiting"] == 0
    restarted.terminate()
    assert restarted.wait(15) == 0, restarted.output()
    assert not events(restarted, "schedule.fired")


class StoppedClock:
    """A wall clock stopped at ``moment`` that counts the loop's questions: a schedule loop has
    made its first decision once it asked the time for its sleep (the fourth question)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.moment


def unchecked(namespace: str, name: str) -> ScheduleSpec:
    """A ``@monthly`` schedule named past the file's and the CRD's checks (which refuse ``:``,
    ``/`` and ``{``): its mark must still be its own."""
    return ScheduleSpec.model_construct(namespace=namespace, name=name, type="noop",
                                        schedule="@monthly", payload={"n": 1})


async def run_once(specs: list[ScheduleSpec], client: Client, moment: datetime) -> None:
    """Two replicas of each schedule's loop at ``moment``, stopped after their first decision."""
    stop = asyncio.Event()
    clocks = [StoppedClock(moment) for _ in range(2 * len(specs))]
    loops = [asyncio.create_task(run_schedule(spec, client, clock, stop))
             for spec, clock in zip(specs * 2, clocks, strict=True)]

    async def decided() -> bool:
        return all(clock.calls >= 4 for clock in clocks)

    await eventually(decided, what="every loop to decide")
    stop.set()
    await asyncio.gather(*loops)


async def test_restarted_loop_skips_marked_bucket_and_odd_names_do_not_collide(
    client: Client, redis: Redis
) -> None:
    q = client.keys(QUEUE)
    specs = [unchecked("default", "a:b"), unchecked("default:a", "b"),
             unchecked("default", "a{b}"), unchecked("default", "x}:wait")]
    marks = [q.schedule_mark(spec.namespace, spec.name) for spec in specs]
    assert len(set(marks)) == len(specs)
    for mark in marks:  # inside the queue's tag, and nothing of the name reaches the key
        digest = mark.removeprefix(f"{q.base}:sched:")
        assert len(digest) == keys.JOB_DIGEST_CHARS and set(digest) <= set("0123456789abcdef")

    moment = datetime(2026, 12, 9, 12, tzinfo=UTC)  # eight days into December's bucket
    bucket = datetime(2026, 12, 1, tzinfo=UTC)
    await run_once(specs, client, moment)
    assert (await client.queue_counts(QUEUE))["waiting"] == len(specs)  # two replicas, one job
    job_ids = [keys.job_id_for(QUEUE, bucket_idempotency_key(spec, bucket)) for spec in specs]

    # What day 8 leaves of the bucket's records: the idempotency records have expired and the
    # finished jobs were trimmed. Only the marks are left.
    await redis.delete(q.wait, *(q.job(i) for i in job_ids), *(q.idempotency(i) for i in job_ids))
    await run_once(specs, client, moment)
    assert (await client.queue_counts(QUEUE))["waiting"] == 0
    assert await gone(redis, *(q.job(i) for i in job_ids))
    end = datetime(2027, 1, 1, tzinfo=UTC)  # each mark lasts until its bucket is over
    for spec, mark in zip(specs, marks, strict=True):
        assert await redis.zscore(mark, f"{spec.namespace}/{spec.name}") == bucket.timestamp()
        assert 0 < await redis.ttl(mark) <= (end - moment).total_seconds() + keys.SCHEDULE_MARK_MARGIN_S
