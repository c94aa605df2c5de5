"""R24 across a primary failover and after trimming: a fan-in whose nodes sit in queues on
different primaries survives a kill -9 of one of them (every child runs, the join runs exactly
once, nothing accepted is lost); a workflow created again after it finished and its node jobs
were trimmed answers the same workflow within retention and runs nothing, and after retention
is created anew and runs again; outcomes applied in batches (wf_apply_many) move each node
once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_fixtures import ApiServer
from fixtures import ON_CLUSTER, SERVER_KIND, Proc, eventually, server_binary
from wfhelpers import WF_TASKS, a, b, ended, node, runs

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded_cluster import ClusterProcess
from jobq.errors import JobqError, NotFound
from jobq.settings import Settings
from jobq.tasks import load_registry
from jobq.workflows import chord, group
from jobq.workflows.relay import Relay

CHILDREN = 6  # per queue


RETENTION_S = 3  # workflow retention of these tests (the default is 7 days)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(","),
                                       "workflow_retention_s": RETENTION_S})


async def test_recreated_after_trimming_same_within_retention_anew_after(
    client: Client, start_worker: Callable[..., Proc], tmp_path: Path,
) -> None:
    """Node jobs trimmed at once (JOBQ_COMPLETED_KEEP=0); node jobs' idempotency records at
    the default 7 days, longer than the workflow's retention."""
    effects = tmp_path / "effects.txt"
    start_worker("wf-a:2", "wf-b:2", JOBQ_TEST_EFFECTS_FILE=str(effects),
                 JOBQ_COMPLETED_KEEP="0", JOBQ_WORKFLOW_RETENTION_S=str(RETENTION_S))
    assert client.settings.workflow_retention_s == RETENTION_S
    spec = chord(group(a("x", add=1), b("y", add=2)), a("join"))
    first = await client.create_workflow("nightly-report", spec)
    view = await ended(client, first.workflow_id)
    assert view.state == "succeeded" and node(view, "join").result["value"] == 3

    async def trimmed() -> bool:
        for job_id in first.jobs.values():
            try:
                await client.get_job(job_id)
                return False
            except NotFound:
                continue
        return True

    await eventually(trimmed, timeout=10, what="the node jobs to be trimmed")
    # Within retention: the same workflow, its results kept, nothing runs again.
    again = await client.create_workflow("nightly-report", spec)
    assert again.duplicate and again.workflow_id == first.workflow_id
    assert again.jobs == first.jobs
    kept = await client.get_workflow(first.workflow_id, results=True)
    assert kept.state == "succeeded" and node(kept, "join").result["value"] == 3
    assert runs(effects) == {"x": 1, "y": 1, "join": 1}

    # After retention every key of the workflow is gone; the same key creates it anew.
    async def expired() -> bool:
        try:
            await client.get_workflow(first.workflow_id, nodes=False)
            return False
        except NotFound:
            return True

    await eventually(expired, timeout=15, what="the workflow to expire")
    anew = await client.create_workflow("nightly-report", spec)
    assert not anew.duplicate and anew.workflow_id == first.workflow_id
    view = await ended(client, anew.workflow_id)
    assert view.state == "succeeded" and node(view, "join").result["value"] == 3
    assert runs(effects) == {"x": 2, "y": 2, "join": 2}


@pytest.mark.timeout(240)
@pytest.mark.skipif(not ON_CLUSTER, reason="needs a 3+3 cluster to kill a primary "
                    "(JOBQ_TEST_SERVER=valkey-cluster or redis-cluster)")
async def test_fan_in_across_primaries_survives_a_primary_killed(
    tmp_path: Path, settings: Settings, start_api: Callable[..., ApiServer],
    start_worker: Callable[..., Proc],
) -> None:
    """Children in wf-a and wf-b (different primaries), created through the API at
    JOBQ_ACK_REPLICAS=1; wf-b's primary is killed -9 while they run, then comes back (as its
    pod would) once the replica took over."""
    cluster = ClusterProcess(server_binary(SERVER_KIND), tmp_path / "c").start()
    try:
        a_primary, b_primary = cluster.primary_of("wf-a"), cluster.primary_of("wf-b")
        assert a_primary != b_primary
        mine = settings.model_copy(update={"redis_url": cluster.url, "ack_replicas": 1})
        effects = tmp_path / "effects.txt"
        env = {"REDIS_URL": cluster.url, "JOBQ_ACK_REPLICAS": "1",
               "JOBQ_TEST_EFFECTS_FILE": str(effects)}
        api = start_api(mine, JOBQ_ACK_REPLICAS="1")
        start_worker("wf-a:4", "wf-b:4", **env)
        nodes = [{"key": f"{q}{i}", "type": f"wf-{q}",
                  "payload": {"name": f"{q}{i}", "add": i, "sleep": 0.4}}
                 for q in ("a", "b") for i in range(CHILDREN)]
        nodes.append({"key": "join", "type": "wf-a", "payload": {"name": "join", "add": 0},
                      "deps": [{"node": n["key"]} for n in nodes]})
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            answer = await http.post("/workflows", json={"idempotencyKey": "failover",
                                                         "nodes": nodes})
        assert answer.status_code == 202, answer.text
        wf_id = answer.json()["workflowId"]
        await eventually(lambda: asyncio.to_thread(lambda: effects.exists() and any(
            line.startswith("b") for line in effects.read_text().splitlines())),
            timeout=30, what="a child of wf-b to start")
        cluster.nodes[b_primary].kill()

        async def promoted() -> bool:
            try:
                return await asyncio.to_thread(cluster.primary_of, "wf-b") != b_primary
            except JobqError:
                return False

        await eventually(promoted, timeout=60, what="the replica to take over")
        await asyncio.to_thread(cluster.nodes[b_primary].start)
        client = Client(connect(cluster.url), load_registry(mine.tasks), mine)
        try:
            view = await ended(client, wf_id, timeout=120)
        finally:
            await client.redis.aclose()
        assert view.state == "succeeded", view
        done = runs(effects)
        children = {n["key"] for n in nodes} - {"join"}
        assert children <= set(done), done  # every child ran (a killed attempt may rerun)
        assert done["join"] == 1
        join = node(view, "join").result
        assert sorted(join["inputs"]) == sorted(children)
        assert join["value"] == 2 * sum(range(CHILDREN))
    finally:
        cluster.stop()



async def test_outcomes_applied_in_batches_move_each_node_once(client: Client) -> None:
    """No worker: the test plays the relay with ``apply_entries`` (wf_apply_many). Overlapping
    batches, a batch sent twice and an outcome of another epoch: each node moves once, the
    join is released once (one job) and every counter agrees with the node states."""
    created = await client.create_workflow(
        "batched", chord(group(*(a(f"c{i}", add=i) for i in range(4))), b("join")))
    relay = Relay(client.scripts, client.settings)
    wf_a = client.keys("wf-a")

    def entry(key: str, epoch: int = 0, outcome: str = "S") -> str:
        idx = int(key[1:])
        return json.dumps({"w": f"{created.workflow_id}|{idx}|{epoch}", "o": outcome,
                           "d": json.dumps({"name": key, "value": idx, "inputs": {},
                                            "errors": {}})})

    await relay.apply_entries([entry("c0"), entry("c1"), entry("c2", epoch=1, outcome="F")])
    await relay.apply_entries([entry("c1"), entry("c0"), entry("c2")])
    view = await client.get_workflow(created.workflow_id)
    assert view.counts["succeeded"] == 3 and node(view, "join").state == "waiting"
    batch = [entry("c3"), entry("c2"), entry("c3")]
    await relay.apply_entries(batch)
    await relay.apply_entries(batch)  # a relay that died before its ack: taken again
    view = await client.get_workflow(created.workflow_id)
    assert node(view, "join").state == "released" and view.counts["succeeded"] == 4
    assert await client.workflows.check(created.workflow_id) == []
    assert await client.redis.llen(client.keys("wf-b").wait) == 1  # the join's job, once
    assert await client.redis.llen(wf_a.wait) == 4  # the children's jobs (never claimed)
