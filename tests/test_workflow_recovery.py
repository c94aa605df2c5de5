"""R24 through crashes, duplicates and cancels: an outbox entry applied twice releases once; a
relay killed -9 again and again during a fan-in loses no release and makes none twice;
cancelling stops waiting, queued and running nodes and nothing starts afterwards; when a
workflow ends, every key it owns expires. On a cluster the two node queues live on different
primaries, and every script touches one slot (tests/test_redis_cluster.py checks KEYS)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures import ON_CLUSTER, Proc, eventually, job_in
from redis.asyncio import RedisCluster
from redis.crc import key_slot
from wfhelpers import WF_TASKS, a, b, ended, node, runs

from jobq.client import Client
from jobq.jobs import State
from jobq.keys import QueueKeys
from jobq.settings import Settings
from jobq.workflows import Node, chord, group
from jobq.workflows.keys import INTENT_SHARDS, intent_key, outbox_keys
from jobq.workflows.relay import Relay


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.txt"


async def wait_len(client: Client, queue: str) -> int:
    return int(await client.redis.llen(QueueKeys(client.settings.key_prefix, queue).wait))


async def test_outbox_entry_applied_twice_releases_once(client: Client) -> None:
    """No worker: the test plays the relay. Each node's outcome is applied twice (a duplicate
    delivery, a relay that died before its ack); the join is released once, with one job."""
    created = await client.create_workflow("dup", chord(group(a("x", add=1), b("y", add=2)),
                                                        b("join")))
    relay = Relay(client.scripts, client.settings)
    wk = relay.wf.keys(created.workflow_id)
    assert await wait_len(client, "wf-a") == 1 and await wait_len(client, "wf-b") == 1
    wf_field = await client.redis.hget(client.keys("wf-a").job(created.jobs["x"]), "wf")
    x_entry = json.dumps({"w": wf_field, "o": "S", "d": json.dumps({"value": 1})})
    for _ in range(2):
        await relay.apply_entry(x_entry)
    assert (await client.get_workflow(created.workflow_id)).counts["succeeded"] == 1
    y_field = await client.redis.hget(client.keys("wf-b").job(created.jobs["y"]), "wf")
    y_entry = json.dumps({"w": y_field, "o": "S", "d": json.dumps({"value": 2})})
    first = await relay.wf.apply(wk, "apply", *y_field.split("|")[1:], "S", "{}")
    second = await relay.wf.apply(wk, "apply", *y_field.split("|")[1:], "S", "{}")
    assert first.applied and not second.applied
    assert [s.key for s in first.ready] == [s.key for s in second.ready] == ["join"]
    await relay.follow_up(wk, first)
    await relay.follow_up(wk, second)  # the same ready entry handed to a second relay
    await relay.apply_entry(y_entry)
    assert await wait_len(client, "wf-b") == 2  # y, then join: once
    view = await client.get_workflow(created.workflow_id)
    assert node(view, "join").state == "released"
    assert view.counts == {"waiting": 0, "released": 1, "succeeded": 2, "failed": 0,
                           "cancelled": 0, "dep_failed": 0, "skipped": 0}
    assert await client.redis.llen(wk.key("ready")) == 0


async def test_cancel_before_release_leaves_a_cancelled_job_no_late_release_starts(
    client: Client,
) -> None:
    """The creator died after storing the workflow, before creating its roots' jobs; the
    workflow is cancelled; a relay that still held the ready entry releases it late: the job in
    the node's place is cancelled and nothing waits in the queue."""
    relay = client.workflows.relay
    held: list[Any] = []

    async def creator_dies(wk: Any, step: Any) -> Any:
        held.append(step)
        return step

    relay.follow_up = creator_dies  # type: ignore[method-assign]
    created = await client.create_workflow("late", [a("root"), b("next").after("root")])
    del relay.follow_up  # the real one again
    assert await wait_len(client, "wf-a") == 0 and [s.key for s in held[0].ready] == ["root"]
    view = await client.cancel_workflow(created.workflow_id)
    assert view.state == "cancelled"
    assert {n.key: n.state for n in view.nodes} == {"root": "cancelled", "next": "cancelled"}
    await relay.follow_up(relay.wf.keys(created.workflow_id), held[0])  # the late release
    assert await wait_len(client, "wf-a") == 0
    assert (await client.get_job(created.jobs["root"])).state is State.CANCELLED
    assert await client.workflows.check(created.workflow_id) == []


async def test_relay_killed_during_fan_in_releases_join_once(
    client: Client, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    """A worker (its relay with it) is killed -9 three times while a 30-way fan-in settles;
    the next one picks up the leased outbox entries. The join runs once, with 30 results."""
    env = {"JOBQ_TEST_EFFECTS_FILE": str(effects)}
    spec = chord(group(*(a(f"p{i}", add=1, sleep=0.05) for i in range(30))), b("join"))
    created = await client.create_workflow("kill-loop", spec)
    start_worker("wf-b:2", **env)  # the join's queue, never killed
    for round_ in range(3):
        victim = start_worker("wf-a:3", **env)

        async def progressed(mark: int = (round_ + 1) * 6) -> bool:
            return sum(runs(effects).values()) >= mark

        await eventually(progressed, timeout=30, what="children to run")
        victim.kill9()
    start_worker("wf-a:4", **env)
    view = await ended(client, created.workflow_id, timeout=60)
    assert view.state == "succeeded", view.counts
    join = node(view, "join")
    assert join.result["value"] == 30 and len(join.result["inputs"]) == 30
    join_job = await client.get_job(join.job_id)
    assert runs(effects)["join"] == join_job.attempts == 1


async def test_entries_of_a_relay_that_died_after_taking_them_are_applied(
    client: Client, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    """A relay that took (leased) outbox entries and died before applying them: another relay
    applies them once the lease runs out, and the join is released once."""
    env = {"JOBQ_TEST_EFFECTS_FILE": str(effects)}
    start_worker("wf-b:2", **env)
    # Runs the children; its relay looks once at start, then not for an hour (and is not woken).
    lazy = start_worker("wf-a:4", JOBQ_WORKFLOW_POLL_S="3600", JOBQ_WORKFLOW_WAKE="false", **env)
    relay = Relay(client.scripts, client.settings)
    wf_a = client.keys("wf-a")
    # The lazy worker's relay looks at its start, then not for an hour; on a loaded machine that
    # first look can come late and apply (or, past a lease, re-take) the children's entries. A
    # probe first: whichever relay applies it (the lazy one, or this test's), the lazy one has
    # looked and sleeps from then on.
    probe = await client.create_workflow("dead-relay-probe", a("probe", add=1))

    async def probe_applied() -> bool:
        for entry_id, entry in await relay.wf.take(wf_a, 100, []):
            await relay.apply_entry(entry)
            await relay.wf.take(wf_a, 0, [entry_id])
        return (await client.get_workflow(probe.workflow_id, nodes=False)).state == "succeeded"

    await eventually(probe_applied, what="the probe workflow to end")
    created = await client.create_workflow(
        "dead-relay", chord(group(*(a(f"c{i}", add=1) for i in range(8))), b("join")))
    # A set: an entry taken early comes back to a later take once its lease ran out.
    taken: set[tuple[str, str]] = set()

    async def all_taken() -> bool:  # the dying relay's takes
        taken.update(await relay.wf.take(wf_a, 100, []))
        return len(taken) == 8

    await eventually(all_taken, what="the children's outbox entries")
    lazy.kill9()
    view = await client.get_workflow(created.workflow_id, nodes=False)
    assert view.counts["released"] == 8  # the taken ones are not applied
    start_worker("wf-a:2", **env)
    view = await ended(client, created.workflow_id, timeout=30)
    assert view.state == "succeeded" and node(view, "join").result["value"] == 8
    assert runs(effects)["join"] == 1


async def test_cancel_stops_waiting_queued_and_running_nodes(
    client: Client, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    start_worker("wf-a:2", JOBQ_TEST_EFFECTS_FILE=str(effects))  # nothing serves wf-b
    spec = [a("long", sleep=60), b("queued"), a("after").after("long"),
            b("later").after("queued")]
    created = await client.create_workflow("cancel", spec)
    await eventually(lambda: job_in(client, created.jobs["long"], State.ACTIVE),
                     what="the long node to run")
    view = await client.cancel_workflow(created.workflow_id)
    assert view.state in ("cancelling", "cancelled")
    view = await ended(client, created.workflow_id, timeout=20)
    assert view.state == "cancelled"
    assert {n.key: n.state for n in view.nodes} == {
        "long": "cancelled", "queued": "cancelled", "after": "cancelled", "later": "cancelled"}
    assert (await client.get_job(created.jobs["long"])).history[-1].outcome == "cancelled"
    assert (await client.get_job(created.jobs["queued"])).state is State.CANCELLED
    start_worker("wf-b:2", JOBQ_TEST_EFFECTS_FILE=str(effects))  # now wf-b is served too
    again = await client.cancel_workflow(created.workflow_id)  # cancelling twice: no change
    assert again.state == "cancelled"
    marker = await client.create_workflow("marker", b("marker"))
    await ended(client, marker.workflow_id)  # the wf-b worker has looked at its queue
    assert runs(effects) == {"long": 1, "marker": 1}


async def _all_keys(redis: Any, pattern: str) -> list[str]:
    if isinstance(redis, RedisCluster):
        found: list[str] = []
        for node_ in redis.get_primaries():
            found += await redis.keys(pattern, target_nodes=node_)
        return found
    return list(await redis.keys(pattern))


async def test_no_keys_left_after_retention(
    client: Client, settings: Settings, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    client.settings = settings.model_copy(update={"workflow_retention_s": 1})
    start_worker("wf-a:2", "wf-b:2", JOBQ_TEST_EFFECTS_FILE=str(effects))
    spec = chord(group(a("x"), Node("bad", "wf-fail", {"name": "bad"})), b("y"))
    created = await client.create_workflow("expiring", spec)
    view = await ended(client, created.workflow_id)
    assert view.state == "failed"
    pattern = f"{settings.key_prefix}:{{wf:{created.workflow_id}}}*"

    async def gone() -> bool:
        return not await _all_keys(client.redis, pattern)

    await eventually(gone, timeout=10, what="the workflow's keys to expire")
    for queue in ("wf-a", "wf-b"):
        outbox, due = outbox_keys(client.keys(queue).base)
        assert await client.redis.hlen(outbox) == 0 and await client.redis.zcard(due) == 0
    for shard in range(INTENT_SHARDS):
        assert await client.redis.zscore(intent_key(settings.key_prefix, shard),
                                         created.workflow_id) is None


@pytest.mark.skipif(not ON_CLUSTER, reason="a cluster's primaries")
async def test_workflow_scripts_touch_one_slot_across_primaries(
    client: Client, redis_server: Any, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    """The node queues live on different primaries, workflows spread over all three, and
    every workflow script call's KEYS hash to one slot (the cluster refuses CROSSSLOT too)."""
    calls: list[tuple[str, list[str]]] = []
    inner = client.scripts._call

    async def call(name: str, keys: list[str], args: list[Any], **kw: Any) -> Any:
        calls.append((name, keys))
        return await inner(name, keys, args, **kw)

    client.scripts._call = call  # type: ignore[method-assign]
    start_worker("wf-a:2", "wf-b:2", JOBQ_TEST_EFFECTS_FILE=str(effects))
    created = await client.create_workflow("slots", chord(group(a("x"), b("y")), a("z")))
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded" and node(view, "z").result["inputs"].keys() == {"x", "y"}
    relay = Relay(client.scripts, client.settings)
    await relay.wf.inputs(relay.wf.keys(created.workflow_id), 2)
    await relay.wf.take(client.keys("wf-a"), 10, [])
    cancelled = await client.create_workflow("slots-cancel", [a("p", sleep=30), b("q").after("p")])
    await client.cancel_workflow(cancelled.workflow_id)
    assert (await ended(client, cancelled.workflow_id)).state == "cancelled"
    names = {name for name, _ in calls}
    assert {"wf_create", "wf_apply", "wf_ack", "wf_release", "wf_take", "wf_inputs",
            "wf_intent_done"} <= names, names
    for name, call_keys in calls:
        assert len({key_slot(k.encode()) for k in call_keys}) == 1, (name, call_keys)
    primary = redis_server.primary_of
    assert primary(client.keys("wf-a").wait) != primary(client.keys("wf-b").wait)
    homes = {primary(relay.wf.keys(f"{i:032x}").meta) for i in range(64)}
    assert len(homes) == 3  # workflows spread over every primary
