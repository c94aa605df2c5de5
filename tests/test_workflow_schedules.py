"""A schedule that fires a workflow (R24): one workflow per bucket, keyed by the schedule and
the bucket, whatever the replicas and retries; a graph that cannot run is refused when the
schedule is loaded. ``jobq scheduler`` processes against the real servers; the operator's
``JobSchedule`` is tested in tests/cluster/test_operator.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures import Proc, process_env
from test_scheduler import decided, fired, wait_until, write_schedules

from jobq.client import Client
from jobq.schedule import ScheduleError, bucket_idempotency_key, fire, parse
from jobq.schedule_check import check
from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.workflows.keys import workflow_id_for


def nightly(name: str = "nightly", every: str = "1s", **workflow: Any) -> dict[str, Any]:
    """A two-node chain of ``noop`` jobs (bench-queue has no worker here: the root waits)."""
    nodes = workflow.pop("nodes", [
        {"key": "extract", "type": "noop", "payload": {"n": 1}},
        {"key": "report", "type": "noop", "payload": {"n": 2}, "deps": [{"node": "extract"}]},
    ])
    return {"name": name, "every": every, "workflow": {"nodes": nodes, **workflow}}


async def test_two_schedulers_create_one_workflow_per_bucket(
    spawn: Callable[..., Proc], settings: Settings, client: Client, tmp_path: Path
) -> None:
    path = write_schedules(tmp_path, nightly())
    env = process_env(settings)
    procs = [spawn(["scheduler", "--file", str(path)], env, name=f"scheduler-{i}")
             for i in range(2)]
    await wait_until(lambda: all(len(decided(p, "nightly")) >= 3 for p in procs),
                     "both schedulers to see 3 buckets")
    for proc in procs:
        proc.terminate()
        assert proc.wait(15) == 0, proc.output()
    by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for proc in procs:
        for record in fired(proc, "nightly"):
            by_bucket[record["bucket"]].append(record)
    assert len(by_bucket) >= 3
    for bucket, records in by_bucket.items():
        key = f"schedule:default/nightly:{bucket}"
        assert [r["duplicate"] for r in records].count(False) == 1, records
        assert {r["workflowId"] for r in records} == {workflow_id_for(key)}
        view = await client.get_workflow(workflow_id_for(key))
        assert view.idempotency_key == key
        assert {n.key: n.state for n in view.nodes} == {"extract": "released",
                                                         "report": "waiting"}
    # One root job per bucket: no firing created a second workflow.
    assert (await client.counts())["bench-queue"]["waiting"] == len(by_bucket)


async def test_a_fire_retried_makes_the_same_workflow(client: Client) -> None:
    """A firing repeated (a crash after the create, before the mark) answers the same
    workflow and creates nothing more."""
    spec = parse({**nightly(every="1h"), "namespace": "team-a"})
    now = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    first = await fire(spec, now, client.enqueue, None, client.create_workflow)
    again = await fire(spec, now, client.enqueue, None, client.create_workflow)
    assert first is not None and again is not None
    key = bucket_idempotency_key(spec, datetime(2026, 12, 7, 10, tzinfo=UTC))
    assert first.key == again.key == key == "schedule:team-a/nightly:2026-12-07T10:00:00Z"
    assert first.workflow_id == again.workflow_id == workflow_id_for(key)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (await client.counts())["bench-queue"]["waiting"] == 1
    later = await fire(spec, datetime(2026, 12, 7, 11, 5, tzinfo=UTC), client.enqueue, None,
                       client.create_workflow)
    assert later is not None and later.workflow_id != first.workflow_id  # the next bucket's
    assert not later.duplicate


@pytest.mark.any_server
@pytest.mark.parametrize(
    ("entry", "reason", "words"),
    [
        (nightly(nodes=[{"key": "a", "type": "noop", "payload": {"n": 1},
                         "deps": [{"node": "b"}]},
                        {"key": "b", "type": "noop", "payload": {"n": 1},
                         "deps": [{"node": "a"}]}]), "InvalidWorkflow", "cycle through a, b"),
        (nightly(nodes=[{"key": "a", "type": "noop", "payload": {"n": 1},
                         "deps": [{"node": "ghost"}]}]), "InvalidWorkflow", "unknown node"),
        (nightly(nodes=[{"key": "a", "type": "noop", "payload": {"n": 1}},
                        {"key": "a", "type": "noop", "payload": {"n": 1}}]),
         "InvalidWorkflow", "used twice"),
        (nightly(nodes=[{"key": "a", "type": "no-such-task"}]), "UnknownTask",
         "workflow node 'a'"),
        (nightly(nodes=[{"key": "a", "type": "noop", "payload": {"n": "x"}}]),
         "InvalidPayload", "workflow node 'a'"),
        ({**nightly(), "type": "noop"}, "InvalidTarget", "exactly one of 'type' and 'workflow'"),
        ({"name": "nothing", "every": "1s"}, "InvalidTarget", "exactly one"),
        (nightly(nodes=[]), "InvalidSpec", "workflow.nodes"),
    ],
)
def test_a_workflow_schedule_that_cannot_run_is_refused_on_load(
    entry: dict[str, Any], reason: str, words: str, registry: Registry,
) -> None:
    with pytest.raises(ScheduleError) as caught:
        check(entry, registry)
    assert caught.value.reason == reason
    assert words in caught.value.message


async def test_scheduler_skips_a_bad_workflow_schedule_and_runs_the_rest(
    spawn: Callable[..., Proc], settings: Settings, tmp_path: Path
) -> None:
    cyclic = nightly("cyclic", nodes=[
        {"key": "a", "type": "noop", "payload": {"n": 1}, "deps": [{"node": "a"}]}])
    path = write_schedules(tmp_path, cyclic, nightly())
    proc = spawn(["scheduler", "--file", str(path)], process_env(settings))
    await wait_until(lambda: bool(fired(proc, "nightly")), "the good schedule to fire")
    invalid = [line for line in proc.output().splitlines() if "schedule.invalid" in line]
    assert len(invalid) == 1 and "InvalidWorkflow" in invalid[0] and "itself" in invalid[0]
    proc.terminate()
    assert proc.wait(15) == 0
