"""R24 on real worker processes: dependents released exactly once, after their dependencies'
final outcomes only, with each dependency's result; failure policies; cancel; idempotent
creation. Nodes run in two queues (wf-a, wf-b; on a cluster they live on different
primaries)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import Proc
from wfhelpers import WF_TASKS, a, b, ended, node, runs

from jobq.client import Client
from jobq.errors import IdempotencyConflict
from jobq.settings import Settings
from jobq.workflows import Dep, Node, WorkflowInvalid, batch, chain, chord, group


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.txt"


@pytest.fixture
def worker(start_worker: Callable[..., Proc], effects: Path) -> Proc:
    return start_worker("wf-a:4", "wf-b:4", JOBQ_TEST_EFFECTS_FILE=str(effects))


async def test_fan_in_gets_every_result(client: Client, worker: Proc, effects: Path) -> None:
    spec = chord(group(*(a(f"part{i}", add=i) for i in range(5)), b("part5", add=5)),
                 b("sum"))
    created = await client.create_workflow("fan-in", spec)
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded", view
    total = node(view, "sum").result
    assert total["value"] == sum(range(6))
    assert sorted(total["inputs"]) == [f"part{i}" for i in range(6)]
    assert runs(effects) == {**{f"part{i}": 1 for i in range(6)}, "sum": 1}
    assert view.counts["succeeded"] == 7


async def test_chain_runs_in_order_with_each_steps_input(
    client: Client, worker: Proc, effects: Path,
) -> None:
    created = await client.create_workflow("chain", chain(a("s1", add=1), b("s2", add=10),
                                                          a("s3", add=100)))
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded"
    assert [line.split()[0] for line in effects.read_text().splitlines()] == ["s1", "s2", "s3"]
    s2, s3 = node(view, "s2").result, node(view, "s3").result
    assert s2["inputs"] == {"s1": {"name": "s1", "value": 1, "inputs": {}, "errors": {}}}
    assert s3["inputs"]["s2"]["value"] == 11 and s3["value"] == 111
    jobs = [await client.get_job(created.jobs[k]) for k in ("s1", "s2", "s3")]
    assert [j.queue for j in jobs] == ["wf-a", "wf-b", "wf-a"]
    for before, after in itertools.pairwise(jobs):  # each starts after the last ended
        assert before.finishedAt is not None and after.processedAt is not None
        assert after.processedAt >= before.finishedAt


async def test_a_relay_that_never_polls_is_woken_by_each_nodes_end(
    client: Client, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    """The finish that writes a node's outcome also wakes its queue's relay (the outbox wake
    list): with the idle poll an hour long, every step of a chain across two queues is still
    applied and released."""
    start_worker("wf-a:2", "wf-b:2", JOBQ_WORKFLOW_POLL_S="3600",
                 JOBQ_TEST_EFFECTS_FILE=str(effects))
    spec = chain(a("w1", add=1), b("w2", add=1), a("w3", add=1), b("w4", add=1))
    view = await ended(client, (await client.create_workflow("woken", spec)).workflow_id)
    assert view.state == "succeeded" and node(view, "w4").result["value"] == 4
    assert runs(effects) == {"w1": 1, "w2": 1, "w3": 1, "w4": 1}


async def test_diamond_runs_shared_ancestor_and_join_once(
    client: Client, worker: Proc, effects: Path,
) -> None:
    spec = chain(a("root", add=1), group(b("left", add=2), a("right", add=3)), b("join"))
    view = await ended(client, (await client.create_workflow("diamond", spec)).workflow_id)
    assert view.state == "succeeded"
    assert runs(effects) == {"root": 1, "left": 1, "right": 1, "join": 1}
    assert node(view, "join").result["value"] == 3 + 4  # left (2 + 1) + right (3 + 1)
    assert sorted(node(view, "join").result["inputs"]) == ["left", "right"]


async def test_empty_group_releases_what_follows_at_once(
    client: Client, worker: Proc, effects: Path,
) -> None:
    view = await ended(client, (await client.create_workflow("cb", chord(group(), b("cb"))))
                       .workflow_id)
    assert view.state == "succeeded" and node(view, "cb").result["inputs"] == {}
    empty = await client.create_workflow("nothing", group())
    assert (await client.get_workflow(empty.workflow_id)).state == "succeeded"
    assert runs(effects) == {"cb": 1}


async def test_failure_policies(client: Client, worker: Proc, effects: Path) -> None:
    """require: dep_failed, cascading, never run; ignore: runs after, sees the error;
    continue: starts at once, while its other dependency still runs."""
    fail = Node("bad", "wf-fail", {"name": "bad"})
    slow = a("slow", sleep=1.5)
    spec = [fail, slow,
            a("req").after("bad"), b("req-child").after("req"),
            b("ign").after(Dep("bad", "ignore")),
            a("cont").after(Dep("bad", "continue"), "slow")]
    view = await ended(client, (await client.create_workflow("policies", spec)).workflow_id)
    assert view.state == "failed"
    states = {n.key: n.state for n in view.nodes}
    assert states == {"bad": "failed", "slow": "succeeded", "req": "dep_failed",
                      "req-child": "dep_failed", "ign": "succeeded", "cont": "succeeded"}
    assert node(view, "req").error == "dep_failed: bad"
    assert node(view, "req-child").error == "dep_failed: req"
    assert "cannot work" in node(view, "ign").result["errors"]["bad"]
    assert "cannot work" in node(view, "cont").result["errors"]["bad"]
    assert runs(effects) == {"bad": 1, "slow": 1, "ign": 1, "cont": 1}
    cont = await client.get_job(view.nodes[5].job_id)
    slow_job = await client.get_job(node(view, "slow").job_id)
    assert cont.finishedAt is not None and slow_job.finishedAt is not None
    assert cont.finishedAt < slow_job.finishedAt  # it did not wait for "slow"
    assert view.counts == {"waiting": 0, "released": 0, "succeeded": 3, "failed": 1,
                           "cancelled": 0, "dep_failed": 2, "skipped": 0}


async def test_retried_child_releases_callback_once_after_its_success(
    client: Client, worker: Proc, effects: Path,
) -> None:
    spec = batch(a("flaky", failUntil=3), b("steady"), on_success=a("done"),
                 on_complete=b("always"))
    view = await ended(client, (await client.create_workflow("flaky", spec)).workflow_id)
    assert view.state == "succeeded"
    assert runs(effects) == {"flaky": 3, "steady": 1, "done": 1, "always": 1}
    flaky = await client.get_job(node(view, "flaky").job_id)
    done = await client.get_job(node(view, "done").job_id)
    assert flaky.attempts == 3 and flaky.finishedAt is not None and done.processedAt is not None
    assert done.processedAt >= flaky.finishedAt


async def test_fail_fast_cancels_the_rest(client: Client, worker: Proc, effects: Path) -> None:
    spec = [Node("bad", "wf-fail", {"name": "bad"}), a("long", sleep=60),
            b("after-long").after("long")]
    created = await client.create_workflow("fast", spec, fail_fast=True)
    view = await ended(client, created.workflow_id, timeout=20)
    assert view.state == "failed"
    assert {n.key: n.state for n in view.nodes} == {
        "bad": "failed", "long": "cancelled", "after-long": "cancelled"}
    assert "after-long" not in runs(effects)


async def test_idempotent_and_conflicting_creation(
    client: Client, worker: Proc, effects: Path,
) -> None:
    spec = chord(group(a("x"), b("y")), a("z"))
    first = await client.create_workflow("same", spec)
    again = await client.create_workflow("same", spec)
    assert (first.workflow_id, first.jobs, first.duplicate) == (again.workflow_id, again.jobs,
                                                                 False)
    assert again.duplicate
    await ended(client, first.workflow_id)
    after_end = await client.create_workflow("same", spec)
    assert after_end.duplicate and after_end.jobs == first.jobs
    with pytest.raises(IdempotencyConflict):
        await client.create_workflow("same", chord(group(a("x"), b("y")), a("other")))
    with pytest.raises(WorkflowInvalid, match="cycle"):
        await client.create_workflow("cyclic", [a("p").after("q"), a("q").after("p")])
    with pytest.raises(WorkflowInvalid, match="unknown node"):
        await client.create_workflow("unknown", [a("p").after("nope")])
    assert runs(effects) == {"x": 1, "y": 1, "z": 1}
