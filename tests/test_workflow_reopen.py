"""R24 reopening, on real worker processes: a DLQ replay of a failed node (single or bulk)
reopens its workflow, under a new epoch, and its dep_failed descendants then run once; an
outcome of the old epoch changes nothing; each retry mode reruns exactly its nodes, once each;
a retry is refused while the workflow runs; on_success runs once across a retry of everything;
on_failure runs when a member failed and is skipped when none did; a replay of a cancelled
workflow's node is refused, one of an expired workflow's runs as a plain job. Nodes run in
wf-a and wf-b (different primaries on a cluster)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_fixtures import assert_error
from fixtures import Proc, eventually
from test_cli import assert_one_line_error, jobq
from wfhelpers import WF_TASKS, a, b, ended, node, runs

from jobq.bulk_replay import BulkReplayRequest, bulk_replay
from jobq.client import Client
from jobq.settings import Settings
from jobq.workflows import Dep, Node, batch, chain, group
from jobq.workflows.keys import node_job_id
from jobq.workflows.relay import Relay
from jobq.workflows.reopen import WorkflowBusy


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*WF_TASKS.split(","), "wfgate"]})


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.txt"


@pytest.fixture
def worker(start_worker: Callable[..., Proc], effects: Path) -> Proc:
    return start_worker("wf-a:4", "wf-b:4", JOBQ_TEST_EFFECTS_FILE=str(effects))


def gate(name: str, path: Path, **payload: object) -> Node:
    """A node that fails for good until ``path`` exists."""
    return Node(name, "wf-gate", {"name": name, "gate": str(path), **payload})


def parked(name: str) -> Node:
    """A node whose job waits delayed in its queue (30 s) for as long as a test runs."""
    return Node(name, "wf-a", {"name": name}, delay_s=30)


async def dlq_id_of(client: Client, job_id: str) -> str:
    """The DLQ entry of node job ``job_id``, once it is there."""

    async def find() -> str | None:
        page = await client.list_dlq("wf-b", limit=200)
        return next((e.dlqId for e in page.items if e.originalJobId == job_id), None)

    return await eventually(find, what=f"{job_id} dead-lettered")


async def test_replay_reopens_the_workflow_and_its_dep_failed_nodes_run_once(
    client: Client, worker: Proc, effects: Path, tmp_path: Path,
) -> None:
    """g fails: after and last are dep_failed, the batch's on_success too; the workflow ends
    failed. Replaying g's DLQ entry runs g under epoch 1 (a new job id, with its lineage),
    then each dep_failed node once; the workflow ends succeeded. A second replay of the entry
    answers the same job and runs nothing."""
    opened = tmp_path / "open-g"
    spec = [*batch(gate("g", opened, add=1), a("ok", add=2), on_success=b("done")).nodes,
            a("after").after("g"), b("last").after("after"), a("side").after(Dep("g", "ignore"))]
    created = await client.create_workflow("replay-one", spec)
    first = await ended(client, created.workflow_id)
    assert first.state == "failed"
    assert {n.key: n.state for n in first.nodes} == {
        "g": "failed", "ok": "succeeded", "done": "dep_failed", "after": "dep_failed",
        "last": "dep_failed", "side": "succeeded"}
    assert await client.redis.ttl(client.workflows.keys(created.workflow_id).meta) > 0

    opened.touch()
    dlq_id = await dlq_id_of(client, created.jobs["g"])
    replayed = await client.replay(dlq_id)
    wf_id = created.workflow_id
    assert replayed.job_id == node_job_id(wf_id, "wf-b", "g", 1) != created.jobs["g"]
    assert not replayed.duplicate
    view = await ended(client, wf_id)
    assert view.state == "succeeded" and view.episode == 1
    assert view.ended_at_ms is not None and first.ended_at_ms is not None
    assert view.ended_at_ms > first.ended_at_ms
    assert node(view, "g").epoch == 1 and node(view, "g").job_id == replayed.job_id
    assert node(view, "done").result["inputs"]["g"]["value"] == 1
    assert runs(effects) == {"g": 2, "ok": 1, "done": 1, "after": 1, "last": 1, "side": 1}
    job = await client.get_job(replayed.job_id)
    assert job.replayedFromJobId == created.jobs["g"]
    assert [r.jobId for r in (await client.get_dlq_entry(dlq_id)).replays] == [replayed.job_id]

    again = await client.replay(dlq_id)
    assert again.duplicate and again.job_id == replayed.job_id
    assert (await client.get_workflow(wf_id)).state == "succeeded"
    assert runs(effects)["g"] == 2


async def test_bulk_replay_reopens_each_failed_node_and_the_join_runs_once(
    client: Client, worker: Proc, effects: Path, tmp_path: Path,
) -> None:
    opened = tmp_path / "open"
    spec = chain(group(gate("g1", opened), gate("g2", opened), a("fine")), b("join"))
    created = await client.create_workflow("replay-bulk", spec)
    assert (await ended(client, created.workflow_id)).state == "failed"
    opened.touch()
    ids = [await dlq_id_of(client, created.jobs[k]) for k in ("g1", "g2")]
    done = await bulk_replay(client, BulkReplayRequest(ids=ids, idempotencyKey="bulk-wf"),
                             who="test")
    assert [i.jobId for i in done.replayed] == [
        node_job_id(created.workflow_id, "wf-b", k, 1) for k in ("g1", "g2")]
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded"
    assert sorted(node(view, "join").result["inputs"]) == ["fine", "g1", "g2"]
    assert runs(effects) == {"g1": 2, "g2": 2, "fine": 1, "join": 1}


async def test_an_old_epochs_outcome_changes_nothing(
    client: Client, worker: Proc, effects: Path, tmp_path: Path,
) -> None:
    """While g runs again under epoch 1, its epoch-0 outcomes arrive late (a relay that held
    the old entry, a zombie): neither success nor failure moves the node or its dependent."""
    opened = tmp_path / "open"
    created = await client.create_workflow(
        "stale", chain(gate("g", opened, sleep=1.0), a("after")))
    wf_id = created.workflow_id
    assert (await ended(client, wf_id)).state == "failed"
    opened.touch()
    await client.replay(await dlq_id_of(client, created.jobs["g"]))
    relay = Relay(client.scripts, client.settings)
    for outcome in ("S", "F"):
        await relay.apply_entry(json.dumps({"w": f"{wf_id}|0|0", "o": outcome,
                                            "d": json.dumps({"value": 9})}))
        view = await client.get_workflow(wf_id)
        assert view.state == "running"
        assert node(view, "g").state == "released" and node(view, "after").state == "waiting"
    view = await ended(client, wf_id)
    assert view.state == "succeeded" and node(view, "after").result["inputs"]["g"]["value"] == 0
    assert runs(effects) == {"g": 2, "after": 1}


def retry_spec(opened: Path) -> list[Node]:
    """x alone; g fails (until opened) -> y -> z dep_failed; w after g (ignore) -> v."""
    return [a("x"), gate("g", opened), a("y").after("g"), b("z").after("y"),
            a("w").after(Dep("g", "ignore")), b("v").after("w")]


@pytest.mark.parametrize(("mode", "again"), [
    ("failed_only", {"g", "y", "z"}),
    ("failed_and_downstream", {"g", "y", "z", "w", "v"}),
    ("all", {"x", "g", "y", "z", "w", "v"}),
])
async def test_each_retry_mode_reruns_exactly_its_nodes_once(
    client: Client, worker: Proc, effects: Path, tmp_path: Path, mode: str, again: set[str],
) -> None:
    opened = tmp_path / "open"
    created = await client.create_workflow(f"retry-{mode}", retry_spec(opened))
    first = await ended(client, created.workflow_id)
    assert first.state == "failed"
    assert runs(effects) == {"x": 1, "g": 1, "w": 1, "v": 1}
    opened.touch()
    await client.retry_workflow(created.workflow_id, mode)
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded", view
    once = {"x": 1, "g": 1, "w": 1, "v": 1, "y": 0, "z": 0}
    assert runs(effects) == {k: n + (k in again) for k, n in once.items() if n + (k in again)}
    assert {n.key for n in view.nodes if n.epoch == 1} == again
    assert all(n.job_id == node_job_id(created.workflow_id, n.queue, n.key, n.epoch)
               for n in view.nodes)
    again_view = await client.create_workflow(f"retry-{mode}", retry_spec(opened))
    assert again_view.duplicate and again_view.workflow_id == created.workflow_id


async def test_retry_is_refused_while_running_404_when_unknown(
    client: Client, worker: Proc, api: httpx.AsyncClient,
) -> None:
    created = await client.create_workflow("busy", chain(a("slow", sleep=1.5), b("next")))
    with pytest.raises(WorkflowBusy):
        await client.retry_workflow(created.workflow_id, "all")
    answer = await api.post(f"/workflows/{created.workflow_id}/retry", json={"mode": "all"})
    assert_error(answer, 409, "workflow_busy")
    assert_error(await api.post(f"/workflows/{'0' * 32}/retry", json={}), 404, "not_found")
    assert_error(await api.post(f"/workflows/{created.workflow_id}/retry",
                                json={"mode": "some"}), 422)
    bad = {"idempotencyKey": "bad-cb", "nodes": [
        {"key": "m", "type": "wf-a", "payload": {"name": "m"}},
        {"key": "cb", "type": "wf-a", "payload": {"name": "cb"}, "callback": "on_failure",
         "deps": [{"node": "m"}]}]}  # require: it could never run on m's failure
    assert_error(await api.post("/workflows", json=bad), 422, "invalid_workflow")
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded"
    answer = await api.post(f"/workflows/{created.workflow_id}/retry", json={"mode": "all"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] in ("running", "succeeded")
    assert (await ended(client, created.workflow_id)).state == "succeeded"


async def test_on_success_runs_once_across_a_retry_of_everything(
    client: Client, worker: Proc, effects: Path,
) -> None:
    created = await client.create_workflow(
        "once", batch(a("m1", add=1), b("m2", add=2), on_success=a("ok")))
    assert (await ended(client, created.workflow_id)).state == "succeeded"
    await client.retry_workflow(created.workflow_id, "all")
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded" and view.episode == 1
    assert runs(effects) == {"m1": 2, "m2": 2, "ok": 1}
    assert node(view, "ok").epoch == 0 and node(view, "ok").state == "succeeded"


async def test_on_failure_runs_on_a_failure_and_is_skipped_on_success(
    client: Client, worker: Proc, effects: Path, tmp_path: Path,
) -> None:
    failing = await client.create_workflow(
        "on-failure", batch(a("m1"), gate("m2", tmp_path / "never"), b("m3").after("m2"),
                            on_failure=a("oops"), on_success=b("fine")))
    view = await ended(client, failing.workflow_id)
    assert view.state == "failed"
    oops = node(view, "oops")
    assert oops.state == "succeeded"
    assert "gate closed" in oops.result["errors"]["m2"]
    assert oops.result["errors"]["m3"] == "dep_failed: m2"
    assert node(view, "fine").state == "dep_failed"

    passing = await client.create_workflow(
        "no-failure", batch(a("p1"), b("p2"), on_failure=a("unused")))
    view = await ended(client, passing.workflow_id)
    assert view.state == "succeeded"
    assert node(view, "unused").state == "skipped" and view.counts["skipped"] == 1
    assert runs(effects) == {"m1": 1, "m2": 1, "oops": 1, "p1": 1, "p2": 1}


async def test_on_failure_runs_after_fail_fast_cancelled_the_rest(
    client: Client, worker: Proc, effects: Path, tmp_path: Path,
) -> None:
    created = await client.create_workflow(
        "ff-on-failure", batch(gate("bad", tmp_path / "never"), parked("later"),
                               on_failure=b("report")), fail_fast=True)
    view = await ended(client, created.workflow_id)
    assert view.state == "failed"
    assert node(view, "later").state == "cancelled"
    report = node(view, "report")
    assert report.state == "succeeded" and sorted(report.result["errors"]) == ["bad", "later"]
    assert runs(effects) == {"bad": 1, "report": 1}


async def test_replay_of_a_cancelled_workflows_node_is_refused_an_expired_ones_runs_plain(
    client: Client, settings: Settings, worker: Proc, effects: Path, tmp_path: Path,
    api: httpx.AsyncClient,
) -> None:
    cancelled = await client.create_workflow(
        "cancelled", [gate("g", tmp_path / "never"), parked("parked")])
    dlq_id = await dlq_id_of(client, cancelled.jobs["g"])
    await client.cancel_workflow(cancelled.workflow_id)
    assert (await ended(client, cancelled.workflow_id)).state == "cancelled"
    with pytest.raises(WorkflowBusy):
        await client.replay(dlq_id)
    assert_error(await api.post(f"/dlq/{dlq_id}/replay", json={}), 409, "workflow_busy")

    short = Client(client.redis, client.registry,
                   settings.model_copy(update={"workflow_retention_s": 2}))
    gone = await short.create_workflow("expires", [gate("h", tmp_path / "never")])
    assert (await ended(client, gone.workflow_id)).state == "failed"
    meta = client.workflows.keys(gone.workflow_id).meta
    await eventually(lambda: _gone(client, meta), timeout=10, what="the workflow to expire")
    replayed = await client.replay(await dlq_id_of(client, gone.jobs["h"]))
    assert replayed.job_id != node_job_id(gone.workflow_id, "wf-b", "h", 1)
    job = await eventually(lambda: _final(client, replayed.job_id), what="the plain replay")
    assert job.state == "failed"  # still gated: it ran, outside any workflow
    assert await client.redis.hget(client.keys("wf-b").job(replayed.job_id), "wf") is None
    assert runs(effects)["h"] == 2


async def _gone(client: Client, key: str) -> bool:
    return not await client.redis.exists(key)


async def _final(client: Client, job_id: str):  # type: ignore[no-untyped-def]
    job = await client.get_job(job_id)
    return job if job.state in ("completed", "failed", "cancelled") else None


@pytest.mark.any_server
async def test_cli_retry(client: Client, settings: Settings) -> None:
    """``jobq workflows retry``: refused in one line while running, unknown or a bad mode;
    once the workflow has ended (cancelled here; no worker), its nodes are released again."""
    created = await client.create_workflow("cli-retry", [parked("p"), b("q").after("p")])
    wf = created.workflow_id
    assert_one_line_error(jobq(settings, "workflows", "retry", wf), 1, "is running")
    assert_one_line_error(jobq(settings, "workflows", "retry", "0" * 32), 3, "no workflow")
    assert jobq(settings, "workflows", "retry", wf, "--mode", "some").returncode == 2
    await client.cancel_workflow(wf)
    done = jobq(settings, "workflows", "retry", wf, "--mode", "all")
    assert done.returncode == 0 and done.stdout.startswith(f"{wf}\trunning"), done.stderr
    view = await client.get_workflow(wf)
    assert [(n.key, n.state, n.epoch) for n in view.nodes] == [
        ("p", "released", 1), ("q", "waiting", 1)]
    assert (await client.get_job(node(view, "p").job_id)).state == "delayed"
    assert await client.workflows.check(wf) == []
