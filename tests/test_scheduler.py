"""``jobq scheduler`` processes against real Redis: one job per bucket whatever the replicas,
restarts and outages; bad files and bad schedules."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fixtures import Proc, process_env

from jobq import keys
from jobq.client import Client
from jobq.embedded import ServerProcess, free_port, valkey_binary
from jobq.settings import Settings

TIMEOUT_S = 30.0


def write_schedules(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml.safe_dump({"schedules": list(entries)}))
    return path


def tick(name: str = "tick", every: str = "1s") -> dict[str, Any]:
    """A schedule of ``noop`` jobs: bench-queue has no worker here, so its jobs stay waiting."""
    return {"name": name, "type": "noop", "every": every, "payload": {"n": 1}}


def events(proc: Proc, event: str) -> list[dict[str, Any]]:
    found = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            record = orjson.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def fired(proc: Proc, name: str) -> list[dict[str, Any]]:
    return [r for r in events(proc, "schedule.fired") if r["name"] == name]


def skipped(proc: Proc, name: str) -> list[dict[str, Any]]:
    """Buckets not fired because the schedule's mark says another process (or this one before a
    restart) enqueued them already."""
    return [r for r in events(proc, "schedule.already_fired") if r["name"] == name]


def decided(proc: Proc, name: str) -> list[dict[str, Any]]:
    """The buckets ``proc`` fired or found marked: a replica whose peer fired a bucket first
    sees the mark and skips it, one that raced its peer fires it again (a duplicate)."""
    return fired(proc, name) + skipped(proc, name)


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def assert_one_job_per_bucket(client: Client, procs: list[Proc], name: str) -> set[str]:
    """Every bucket any process fired has exactly one created job, the one its key names."""
    by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for proc in procs:
        for record in fired(proc, name):
            by_bucket[record["bucket"]].append(record)
    marked = {r["bucket"] for proc in procs for r in skipped(proc, name)}
    assert marked <= set(by_bucket)  # a mark never names a bucket that was not enqueued
    for bucket, records in by_bucket.items():
        key = f"schedule:default/{name}:{bucket}"
        created = [r for r in records if not r["duplicate"]]
        assert len(created) == 1, (bucket, records)
        job_id = keys.job_id_for(records[0]["queue"], key)
        assert {r["jobId"] for r in records} == {job_id}
        job = await client.get_job(job_id)
        assert job.idempotencyKey == key
        assert job.type == "noop"
    return set(by_bucket)


async def test_two_schedulers_make_one_job_per_bucket(
    spawn: Callable[..., Proc], settings: Settings, client: Client, tmp_path: Path
) -> None:
    path = write_schedules(tmp_path, tick())
    env = process_env(settings)
    procs = [spawn(["scheduler", "--file", str(path)], env, name=f"scheduler-{i}")
             for i in range(2)]
    await wait_until(lambda: all(len(decided(p, "tick")) >= 4 for p in procs),
                     "both schedulers to see 4 buckets")
    for proc in procs:
        proc.terminate()
        assert proc.wait(15) == 0, proc.output()
    buckets = await assert_one_job_per_bucket(client, procs, "tick")
    # Both handled every bucket they saw: the second of each was a duplicate or skipped.
    assert any(r["duplicate"] for p in procs for r in fired(p, "tick")) or any(
        skipped(p, "tick") for p in procs)
    counts = await client.counts()
    assert counts["bench-queue"]["waiting"] == len(buckets) >= 4


async def test_kill9_and_restart_mid_bucket_keeps_one_job_per_bucket(
    spawn: Callable[..., Proc], settings: Settings, client: Client, tmp_path: Path
) -> None:
    # "hourly" is always restarted mid-bucket; "tick" keeps buckets turning meanwhile.
    path = write_schedules(tmp_path, tick(), tick("hourly", every="1h"))
    env = process_env(settings)
    args = ["scheduler", "--file", str(path)]
    steady, victim = spawn(args, env, name="steady"), spawn(args, env, name="victim")
    await wait_until(lambda: bool(decided(victim, "hourly") and decided(steady, "hourly"))
                     and len(decided(victim, "tick")) >= 2, "both to fire")
    victim.kill9()
    seen = len(fired(steady, "tick"))
    await wait_until(lambda: len(fired(steady, "tick")) >= seen + 2, "buckets while one is dead")
    restarted = spawn(args, env, name="restarted")
    await wait_until(lambda: bool(decided(restarted, "hourly"))
                     and len(decided(restarted, "tick")) >= 2, "the restarted scheduler to fire")
    first, again = decided(victim, "hourly")[0], decided(restarted, "hourly")[0]
    if first["bucket"] == again["bucket"]:  # not if the test ran across an hour boundary
        assert again["event"] == "schedule.already_fired", again  # the mark, not a re-enqueue
    for proc in (steady, restarted):
        proc.terminate()
        assert proc.wait(15) == 0, proc.output()
    procs = [steady, victim, restarted]
    ticks = await assert_one_job_per_bucket(client, procs, "tick")
    hours = await assert_one_job_per_bucket(client, procs, "hourly")
    counts = await client.counts()
    assert counts["bench-queue"]["waiting"] == len(ticks) + len(hours)


async def test_redis_outage_is_retried_not_fatal(
    spawn: Callable[..., Proc], settings: Settings, client: Client, tmp_path: Path
) -> None:
    port = free_port()
    env = process_env(settings, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    proc = spawn(["scheduler", "--file", str(write_schedules(tmp_path, tick()))], env)
    await wait_until(lambda: len(events(proc, "schedule.redis_unavailable")) >= 2,
                     "the scheduler to report Redis as unavailable")
    assert proc.popen.poll() is None
    server = ServerProcess(valkey_binary(), tmp_path / "late-redis", port=port).start()
    try:
        await wait_until(lambda: len(fired(proc, "tick")) >= 2, "firing once Redis is back")
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        server.stop()


async def test_bad_schedule_is_skipped_and_the_rest_run(
    spawn: Callable[..., Proc], settings: Settings, tmp_path: Path
) -> None:
    path = write_schedules(
        tmp_path,
        {"name": "bad-cron", "type": "noop", "schedule": "61 * * * *"},
        {"name": "bad-type", "type": "no-such-task", "every": "1s"},
        {"name": "bad-payload", "type": "noop", "every": "1s", "payload": {"n": "x"}},
        tick(),
        tick(),
    )
    proc = spawn(["scheduler", "--file", str(path)], process_env(settings))
    await wait_until(lambda: bool(fired(proc, "tick")), "the good schedule to fire")
    reasons = {(r["name"], r["reason"]) for r in events(proc, "schedule.invalid")}
    assert reasons == {("bad-cron", "InvalidCron"), ("bad-type", "UnknownTask"),
                       ("bad-payload", "InvalidPayload"), ("tick", "DuplicateName")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read schedule file"),
        ("schedules: [unclosed", "is not valid YAML"),
        ("just: a mapping", "expected a list of schedules"),
        ("[]", "no valid schedule"),
        ("- {name: x, type: noop, every: 5 minutes}", "no valid schedule"),
    ],
)
def test_bad_file_is_one_line_and_non_zero(
    spawn: Callable[..., Proc], settings: Settings, tmp_path: Path, content: str | None,
    message: str,
) -> None:
    path = tmp_path / "schedules.yaml"
    if content is not None:
        path.write_text(content)
    proc = spawn(["scheduler", "--file", str(path)], process_env(settings))
    assert proc.wait(15) != 0
    errors = [line for line in proc.output().splitlines() if line.startswith("jobq: error:")]
    assert len(errors) == 1 and message in errors[0], proc.output()
    assert "Traceback" not in proc.output()
