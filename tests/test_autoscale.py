"""The operator's pure decisions, without a cluster: desired replicas, the scale-down wait,
pod-deletion costs, the annotations, what a loop knows of its Deployment's size (kopf's rule on
peering is pinned in tests/test_peering.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobq.operator.autoscale import (
    Decision,
    PolicyError,
    ScalePolicy,
    Size,
    decide,
    deletion_costs,
    desired_replicas,
    format_since,
    index_entry,
    known_size,
    parse_policy,
    parse_since,
)
from jobq.operator.schedules import floor_bucket, needs_reconcile
from jobq.operator.status import ready_condition, status_patch
from jobq.schedule import ScheduleSpec

POLICY = ScalePolicy("email-queue", min_replicas=1, max_replicas=4, jobs_per_replica=5,
                     scale_down_delay_s=30)


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [(0, 1), (1, 1), (5, 1), (6, 2), (10, 2), (11, 3), (20, 4), (21, 4), (10_000, 4)],
)
def test_desired_is_ceil_of_backlog_per_replica_clamped(backlog: int, expected: int) -> None:
    assert desired_replicas(backlog, POLICY) == expected


def test_min_zero_scales_to_zero_and_one_job_wakes_it() -> None:
    policy = ScalePolicy("q", min_replicas=0, max_replicas=3, jobs_per_replica=10,
                         scale_down_delay_s=0)
    assert desired_replicas(0, policy) == 0
    assert desired_replicas(1, policy) == 1
    assert decide(policy, 0, 1, None, 100.0).replicas == 0
    assert decide(policy, 1, 0, None, 100.0) == Decision(1, 1, None)


def test_negative_backlog_counts_as_none() -> None:
    assert desired_replicas(-3, POLICY) == POLICY.min_replicas


def test_scale_up_is_immediate_and_clears_a_pending_scale_down() -> None:
    assert decide(POLICY, 20, 1, None, 0.0) == Decision(4, 4, None)
    assert decide(POLICY, 20, 2, 5.0, 10.0) == Decision(4, 4, None)


def test_scale_down_waits_for_the_whole_delay() -> None:
    first = decide(POLICY, 0, 4, None, 100.0)
    assert first == Decision(4, 1, 100.0)  # the wait starts; the size stays
    assert decide(POLICY, 0, 4, first.lower_since, 129.9) == Decision(4, 1, 100.0)
    assert decide(POLICY, 0, 4, first.lower_since, 130.0) == Decision(1, 1, None)


def test_zero_delay_scales_down_at_once() -> None:
    policy = ScalePolicy("q", 1, 4, 5, scale_down_delay_s=0)
    assert decide(policy, 0, 4, None, 0.0) == Decision(1, 1, None)


def test_a_desire_back_at_current_size_restarts_the_wait_no_flapping() -> None:
    """Backlog that comes and goes inside the delay never shrinks the Deployment."""
    current, since, now = 4, None, 0.0
    backlogs = [0, 0, 20, 0, 0, 20, 0, 0, 20]  # never 30 s low in a row
    for backlog in backlogs:
        decision = decide(POLICY, backlog, current, since, now)
        assert decision.replicas == current == 4
        since = decision.lower_since
        now += 10.0
    # Then continuously low for the full delay: exactly one scale-down, to the desire.
    sizes = []
    for _ in range(6):
        decision = decide(POLICY, 3, current, since, now)
        sizes.append(decision.replicas)
        current, since = decision.replicas, decision.lower_since
        now += 10.0
    assert sizes == [4, 4, 4, 1, 1, 1]


def test_a_lower_desire_that_changes_keeps_the_wait_and_lands_on_the_latest() -> None:
    d1 = decide(POLICY, 12, 4, None, 0.0)  # wants 3
    d2 = decide(POLICY, 7, 4, d1.lower_since, 20.0)  # wants 2, same wait
    assert d2.lower_since == 0.0 and d2.replicas == 4
    assert decide(POLICY, 7, 4, d2.lower_since, 30.0) == Decision(2, 2, None)


def test_a_wait_started_in_the_future_clock_skew_counts_from_now() -> None:
    assert decide(POLICY, 0, 4, 500.0, 100.0) == Decision(4, 1, 100.0)


def test_size_above_max_comes_down_after_the_delay_below_min_goes_up_at_once() -> None:
    assert decide(POLICY, 100, 9, None, 0.0) == Decision(9, 4, 0.0)
    assert decide(POLICY, 100, 9, 0.0, 30.0).replicas == 4
    assert decide(POLICY, 0, 0, None, 0.0) == Decision(1, 1, None)


def test_deletion_costs_put_idle_pods_first() -> None:
    now = 1_000_000
    beats = [
        {"pod": "busy", "inflight": 3, "seenAt": now - 1000},
        {"pod": "busy", "inflight": 2, "seenAt": now - 1000},  # two worker processes, one pod
        {"pod": "light", "inflight": 1, "seenAt": now},
        {"pod": "idle", "inflight": 0, "seenAt": now},
        {"pod": "stale", "inflight": 9, "seenAt": now - 60_000},  # a dead worker's heartbeat
        {"pod": "gone", "inflight": 4, "seenAt": now},  # pod no longer exists
        {"inflight": 4, "seenAt": now},  # malformed
        {"pod": "light", "inflight": "x", "seenAt": now},  # malformed count
    ]
    costs = deletion_costs(["busy", "light", "idle", "stale", "new"], beats, now, 30_000)
    assert costs == {"busy": 5, "light": 1, "idle": 0, "stale": 0, "new": 0}
    removal_order = sorted(costs, key=lambda pod: costs[pod])
    assert removal_order[-2:] == ["light", "busy"]


def test_parse_policy_reads_the_annotations_with_defaults() -> None:
    policy = parse_policy({
        "jobq.io/queue": "email-queue", "jobq.io/min-replicas": "0",
        "jobq.io/max-replicas": "4", "jobq.io/jobs-per-replica": "5",
        "jobq.io/scale-down-delay": "3",
    })
    assert policy == ScalePolicy("email-queue", 0, 4, 5, 3.0)
    assert parse_policy({"jobq.io/queue": "q"}) == ScalePolicy("q")
    assert parse_policy({"jobq.io/queue": "q", "jobq.io/min-replicas": "20"}).max_replicas == 20


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"jobq.io/queue": ""}, "must name a queue"),
        ({"jobq.io/queue": "q", "jobq.io/min-replicas": "two"}, "not a whole number"),
        ({"jobq.io/queue": "q", "jobq.io/min-replicas": "-1"}, "at least 0"),
        ({"jobq.io/queue": "q", "jobq.io/max-replicas": "0"}, "at least 1"),
        ({"jobq.io/queue": "q", "jobq.io/jobs-per-replica": "0"}, "at least 1"),
        ({"jobq.io/queue": "q", "jobq.io/scale-down-delay": "-5"}, "at least 0"),
        ({"jobq.io/queue": "q", "jobq.io/min-replicas": "3", "jobq.io/max-replicas": "2"},
         "above"),
        ({"jobq.io/queue": "q", "jobq.io/max-replicas": "100000"}, "at most"),
    ],
)
def test_parse_policy_refuses_bad_annotations(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(annotations)


def test_scale_down_since_round_trips_and_tolerates_garbage() -> None:
    moment = 1_700_000_000.25
    text = format_since(moment)
    assert text == "2023-11-14T22:13:20.250Z"
    assert parse_since(text) == moment
    assert format_since(None) is None
    for garbage in (None, "", "yesterday", "2023-11-14T22:13:20"):  # naive: no zone
        assert parse_since(garbage) is None


def _deployment(uid: str, generation: int, replicas: int) -> dict[str, object]:
    return {"metadata": {"uid": uid, "generation": generation}, "spec": {"replicas": replicas}}


def test_own_scale_is_not_undone_by_the_streams_late_echo() -> None:
    known = known_size(None, _deployment("u1", 3, 1))
    assert known == Size("u1", 3, 1)
    scaled = known.scaled(4)  # the loop set 4: the API server makes that generation 4
    assert known_size(scaled, _deployment("u1", 3, 1)) == scaled  # the older spec, late
    assert known_size(scaled, _deployment("u1", 4, 4)) == Size("u1", 4, 4)
    assert known_size(scaled, _deployment("u1", 5, 2)) == Size("u1", 5, 2)  # kubectl scale


def test_a_direct_read_wins_at_the_same_generation_and_a_new_object_always() -> None:
    scaled = Size("u1", 4, 4)
    # Someone else's change took generation 4 (ours became 5); the API says so.
    assert known_size(scaled, _deployment("u1", 4, 2), fresh=True) == Size("u1", 4, 2)
    assert known_size(scaled, _deployment("u1", 4, 2)) == scaled
    assert known_size(scaled, _deployment("u2", 1, 1)) == Size("u2", 1, 1)  # re-created


def test_index_entry_keeps_what_the_autoscaler_and_events_need() -> None:
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "ns", "uid": "u", "generation": 2,
                     "annotations": {"jobq.io/queue": "q"}, "managedFields": [{"x": 1}]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"spec": {"containers": []}}},
        "status": {"replicas": 3},
    }
    entry = index_entry(body)
    assert entry == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "ns", "uid": "u", "generation": 2,
                     "annotations": {"jobq.io/queue": "q"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}},
    }
    body["metadata"]["annotations"]["jobq.io/queue"] = "changed"  # type: ignore[index]
    assert entry["metadata"]["annotations"]["jobq.io/queue"] == "q"  # a copy, not a view
    assert index_entry({"metadata": {}})["spec"]["replicas"] == 1  # the API's default


def test_status_patch_writes_only_what_changed() -> None:
    current = {"lastBucket": "a", "nextScheduleTime": "t1", "observedGeneration": 1}
    wanted = {"lastBucket": "a", "nextScheduleTime": "t2", "observedGeneration": 1,
              "lastJobId": None}
    assert status_patch(current, wanted) == {"nextScheduleTime": "t2"}
    assert status_patch(current, {"nextScheduleTime": None}) == {"nextScheduleTime": None}
    assert status_patch(current, current) == {}


def test_ready_condition_keeps_its_transition_time_until_it_flips() -> None:
    first = ready_condition({}, True, "Scheduled", "m", 1, "T1")
    assert first["lastTransitionTime"] == "T1" and first["status"] == "True"
    same = ready_condition({"conditions": [first]}, True, "Suspended", "m2", 2, "T2")
    assert same["lastTransitionTime"] == "T1" and same["reason"] == "Suspended"
    flipped = ready_condition({"conditions": [same]}, False, "UnknownTimeZone", "m3", 3, "T3")
    assert flipped["lastTransitionTime"] == "T3" and flipped["observedGeneration"] == 3


def test_a_new_schedule_waits_for_its_first_full_bucket() -> None:
    spec = ScheduleSpec(name="s", type="noop", every="10s")
    created = datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC)
    bucket = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert floor_bucket(spec, created, None) == bucket
    later = datetime(2025, 1, 1, 0, 5, 0, tzinfo=UTC)
    assert floor_bucket(spec, created, later) == later
    assert floor_bucket(spec, None, None) is None


def test_only_spec_changes_wake_a_schedule_loop() -> None:
    assert needs_reconcile({"metadata": {"generation": 2}, "status": {"observedGeneration": 1}})
    assert needs_reconcile({"metadata": {"generation": 1}})
    assert not needs_reconcile({"metadata": {"generation": 1},
                                "status": {"observedGeneration": 1}})
