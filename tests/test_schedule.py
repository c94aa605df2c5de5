"""The scheduling core without Redis: bucket maths, DST, the missed-bucket rule, validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from jobq.jobs import Backoff
from jobq.schedule import (
    ScheduleError,
    ScheduleSpec,
    bucket_idempotency_key,
    bucket_start,
    due_bucket,
    fire,
    next_fire,
    parse,
    validate,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(**fields: Any) -> ScheduleSpec:
    return parse({"name": "nightly", "type": "cleanup-temp", **fields})


# --- every: epoch-aligned buckets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "now", "start", "after"),
    [
        ("30s", "2026-11-28T10:07:31.500", "2026-11-28T10:07:30", "2026-11-28T10:08:00"),
        ("5m", "2026-11-28T10:07:31", "2026-11-28T10:05:00", "2026-11-28T10:10:00"),
        ("1h", "2026-11-28T10:59:59.999", "2026-11-28T10:00:00", "2026-11-28T11:00:00"),
        ("1h", "2026-11-28T10:00:00", "2026-11-28T10:00:00", "2026-11-28T11:00:00"),
        ("1d", "2026-11-28T23:00:00", "2026-11-28T00:00:00", "2026-11-29T00:00:00"),
    ],
)
def test_every_buckets_are_aligned_to_the_epoch(every: str, now: str, start: str,
                                                after: str) -> None:
    s = spec(every=every)
    assert bucket_start(s, utc(now)) == utc(start)
    assert next_fire(s, utc(now)) == utc(after)


def test_every_combination_and_time_zone_do_not_shift_buckets() -> None:
    now = utc("2026-11-28T10:07:31")
    s = spec(every="1h30m", timeZone="Asia/Kolkata")  # +05:30 must not move epoch buckets
    start = bucket_start(s, now)
    assert start is not None
    assert int(start.timestamp()) % 5400 == 0
    assert start <= now < start + timedelta(seconds=5400)
    assert next_fire(s, now) == start + timedelta(seconds=5400)


def test_replicas_in_other_zones_agree_on_the_bucket() -> None:
    s = spec(every="5m")
    at_utc = utc("2026-11-28T10:07:31")
    at_tokyo = at_utc.astimezone(datetime.now().astimezone().tzinfo)
    assert bucket_start(s, at_utc) == bucket_start(s, at_tokyo)


def test_bucket_idempotency_key_names_the_bucket_in_utc() -> None:
    s = spec(every="1h", namespace="team-a")
    bucket = bucket_start(s, utc("2026-11-28T10:42:00"))
    assert bucket is not None
    assert bucket_idempotency_key(s, bucket) == "schedule:team-a/nightly:2026-11-28T10:00:00Z"
    assert bucket_idempotency_key(spec(every="1h"), bucket).startswith("schedule:default/nightly:")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        bucket_start(spec(every="1m"), datetime(2026, 1, 1))


# --- cron: time zones and DST -------------------------------------------------------------


def test_cron_in_utc() -> None:
    s = spec(schedule="*/15 * * * *")
    assert bucket_start(s, utc("2026-11-28T10:14:59")) == utc("2026-11-28T10:00:00")
    assert bucket_start(s, utc("2026-11-28T10:15:00")) == utc("2026-11-28T10:15:00")
    assert next_fire(s, utc("2026-11-28T10:15:00")) == utc("2026-11-28T10:30:00")


def test_cron_macros() -> None:
    s = spec(schedule="@hourly")
    assert bucket_start(s, utc("2026-11-28T10:14:59")) == utc("2026-11-28T10:00:00")


def test_cron_local_time_moves_in_utc_across_spring_forward() -> None:
    """09:00 Berlin is 08:00Z in winter and 07:00Z in summer (DST starts 2026-03-29)."""
    s = spec(schedule="0 9 * * *", timeZone="Europe/Berlin")
    assert bucket_start(s, utc("2026-03-28T12:00:00")) == utc("2026-03-28T08:00:00")
    assert next_fire(s, utc("2026-03-28T12:00:00")) == utc("2026-03-29T07:00:00")
    assert bucket_start(s, utc("2026-03-29T12:00:00")) == utc("2026-03-29T07:00:00")


def test_cron_time_skipped_by_spring_forward_runs_after_the_gap() -> None:
    """02:30 does not exist in Berlin on 2026-03-29: it runs once, at 03:00 CEST (01:00Z)."""
    s = spec(schedule="30 2 * * *", timeZone="Europe/Berlin")
    assert next_fire(s, utc("2026-03-28T12:00:00")) == utc("2026-03-29T01:00:00")
    assert bucket_start(s, utc("2026-03-29T00:59:59")) == utc("2026-03-28T01:30:00")
    assert bucket_start(s, utc("2026-03-29T01:00:00")) == utc("2026-03-29T01:00:00")
    assert next_fire(s, utc("2026-03-29T01:00:00")) == utc("2026-03-30T00:30:00")


def test_cron_time_repeated_by_fall_back_runs_once() -> None:
    """02:30 happens twice in Berlin on 2026-10-25 (00:30Z and 01:30Z): one bucket, the first."""
    s = spec(schedule="30 2 * * *", timeZone="Europe/Berlin")
    assert next_fire(s, utc("2026-10-24T12:00:00")) == utc("2026-10-25T00:30:00")
    for now in ("2026-10-25T00:30:00", "2026-10-25T01:15:00", "2026-10-25T01:45:00"):
        assert bucket_start(s, utc(now)) == utc("2026-10-25T00:30:00"), now
        assert next_fire(s, utc(now)) == utc("2026-10-26T01:30:00"), now


def test_cron_intervals_follow_real_time_across_fall_back() -> None:
    """``*/30`` fires every 30 real minutes, in both 02:00 hours, each its own bucket."""
    s = spec(schedule="*/30 * * * *", timeZone="Europe/Berlin")
    fires, now = [], utc("2026-10-24T23:50:00")
    while now < utc("2026-10-25T02:10:00"):
        at = next_fire(s, now)
        assert at is not None
        fires.append(at)
        now = at
    assert fires == [utc("2026-10-25T00:00:00") + timedelta(minutes=30 * i) for i in range(6)]
    assert len({bucket_idempotency_key(s, f) for f in fires}) == len(fires)


@pytest.mark.parametrize("expr", ["30 2 * * *", "0 9 * * 1-5", "*/20 1-3 * * *", "0 0 1 * *"])
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC"])
def test_cron_buckets_match_a_forward_walk(expr: str, zone: str) -> None:
    """bucket_start and next_fire agree with plain forward iteration around both DST changes."""
    s = spec(schedule=expr, timeZone=zone)
    for day in ("2026-03-08", "2026-03-29", "2026-10-25", "2026-11-01"):
        origin = utc(f"{day}T00:00:00") - timedelta(days=40)
        walk = CronSim(expr, origin.astimezone(ZoneInfo(zone)))
        fires = []
        for moment in walk:
            at = moment.astimezone(UTC)
            if at > utc(f"{day}T00:00:00") + timedelta(days=40):
                break
            fires.append(at)
        now = utc(f"{day}T00:00:00") - timedelta(hours=2)
        while now < utc(f"{day}T00:00:00") + timedelta(days=1):
            past = [f for f in fires if f <= now]
            assert bucket_start(s, now) == max(past), (day, now)
            assert next_fire(s, now) == min(f for f in fires if f > now), (day, now)
            now += timedelta(minutes=7, seconds=13)


# --- the missed-bucket rule ---------------------------------------------------------------


def test_the_current_bucket_is_due_once() -> None:
    s = spec(every="1h")
    assert due_bucket(s, utc("2026-11-28T10:00:30")) == utc("2026-11-28T10:00:00")
    assert due_bucket(s, utc("2026-11-28T10:00:30"), utc("2026-11-28T10:00:00")) is None
    assert due_bucket(s, utc("2026-11-28T11:00:01"), utc("2026-11-28T10:00:00")) == utc(
        "2026-11-28T11:00:00"
    )


def test_after_an_outage_only_the_latest_bucket_is_due() -> None:
    """Down from 10:00 to 13:20: 11:00, 12:00 are never enqueued, 13:00 is (no deadline)."""
    s = spec(every="1h")
    assert due_bucket(s, utc("2026-11-28T13:20:00"), utc("2026-11-28T10:00:00")) == utc(
        "2026-11-28T13:00:00"
    )


def test_starting_deadline_skips_a_stale_bucket() -> None:
    s = spec(every="1h", startingDeadlineSeconds=300)
    assert due_bucket(s, utc("2026-11-28T13:05:00")) == utc("2026-11-28T13:00:00")
    assert due_bucket(s, utc("2026-11-28T13:05:01")) is None
    assert due_bucket(s, utc("2026-11-28T13:20:00"), utc("2026-11-28T10:00:00")) is None
    cron = spec(schedule="0 9 * * *", timeZone="Europe/Berlin", startingDeadlineSeconds=0)
    assert due_bucket(cron, utc("2026-11-28T08:00:00")) == utc("2026-11-28T08:00:00")
    assert due_bucket(cron, utc("2026-11-28T08:00:01")) is None


def test_suspended_schedule_is_never_due() -> None:
    assert due_bucket(spec(every="1m", suspend=True), utc("2026-11-28T10:00:00")) is None


@dataclass
class Enqueued:
    job_id: str
    queue: str
    duplicate: bool


async def test_fire_enqueues_the_bucket_with_its_key_and_options() -> None:
    calls: list[tuple[Any, ...]] = []

    async def enqueue(type: str, idempotency_key: str, payload: dict[str, Any], *,
                      attempts: int | None = None, backoff: Backoff | None = None) -> Enqueued:
        calls.append((type, idempotency_key, payload, attempts, backoff))
        return Enqueued("job-1", "cleanup-queue", len(calls) > 1)

    s = spec(every="15m", payload={"directory": "/tmp/x"},
             options={"attempts": 5, "backoff": {"type": "exponential", "delaySeconds": 2}})
    now = utc("2026-11-28T10:20:00")
    result = await fire(s, now, enqueue)
    assert result is not None
    assert (result.bucket, result.job_id, result.duplicate) == (
        utc("2026-11-28T10:15:00"), "job-1", False)
    assert calls == [("cleanup-temp", "schedule:default/nightly:2026-11-28T10:15:00Z",
                      {"directory": "/tmp/x"}, 5, Backoff(type="exponential", delaySeconds=2))]
    assert await fire(s, now, enqueue, last_bucket=result.bucket) is None
    assert len(calls) == 1
    again = await fire(s, now, enqueue)  # a restarted scheduler: the key makes it a duplicate
    assert again is not None and again.duplicate and again.key == result.key


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "InvalidTrigger"),
        ({"every": "1m", "schedule": "* * * * *"}, "InvalidTrigger"),
        ({"every": "0s"}, "InvalidEvery"),
        ({"every": "5 minutes"}, "InvalidEvery"),
        ({"every": ""}, "InvalidEvery"),
        ({"schedule": "* * * *"}, "InvalidCron"),
        ({"schedule": "0 * * * * *"}, "InvalidCron"),
        ({"schedule": "61 * * * *"}, "InvalidCron"),
        ({"schedule": "0 0 30 2 *"}, "InvalidCron"),
        ({"schedule": "@sometimes"}, "InvalidCron"),
        ({"schedule": "0 9 * * *", "timeZone": "Mars/Olympus_Mons"}, "UnknownTimeZone"),
        ({"schedule": "0 9 * * *", "timeZone": "../../etc/passwd"}, "UnknownTimeZone"),
        ({"every": "1m", "startingDeadlineSeconds": -1}, "InvalidSpec"),
        ({"every": "1m", "payload": []}, "InvalidSpec"),
        ({"every": "1m", "options": {"attempts": 0}}, "InvalidSpec"),
        ({"every": "1m", "evry": "5m"}, "InvalidSpec"),
        ({"every": "1m", "name": "a/b"}, "InvalidSpec"),
        ({"every": "1m", "namespace": "team:a"}, "InvalidSpec"),
    ],
)
def test_invalid_schedules_are_refused_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        spec(**fields)
    assert caught.value.reason == reason
    assert str(caught.value)


def test_validate_checks_a_constructed_spec() -> None:
    built = ScheduleSpec(name="n", type="t", schedule="0 25 * * *")
    with pytest.raises(ScheduleError, match="schedule '0 25"):
        validate(built)
    validate(ScheduleSpec(name="n", type="t", every="1h30m", timeZone="Europe/Berlin"))
