"""Large workflows (R24 at scale): chunked creation (nothing runs before the last chunk seals
it; a creator killed -9 between chunks is resumed by the next create with the same key; another
spec under that key is a conflict, also mid-creation), chunked settling and release (a relay
that dies between two steps of a large fan-out loses no release and makes none twice), and the
20,000-node fan-out / fan-in with real workers, which prints the longest script call seen by
SLOWLOG (correctness is asserted, time only printed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import assert_error
from fixtures import REPO, SERVER_KIND, Proc, eventually, process_env
from redis.exceptions import ConnectionError as RedisConnectionError
from wfhelpers import runs
from wfscaletasks import QUEUE, fan, fan_nodes, item

from jobq.client import Client
from jobq.errors import IdempotencyConflict, LeaseLost
from jobq.jobs import State
from jobq.scripts import SCRIPT_NAMES, script_source
from jobq.settings import Settings
from jobq.workflows import Node, service
from jobq.workflows import relay as relay_module
from jobq.workflows import scripts as wf_scripts
from jobq.workflows.dynamic import add_nodes
from jobq.workflows.keys import node_job_id
from jobq.workflows.relay import Relay
from jobq.workflows.scripts import WorkflowScripts

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "wfscaletasks"]})


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.txt"


async def queued(client: Client) -> int:
    return int(await client.redis.llen(client.keys(QUEUE).wait))


async def wf_state(client: Client, workflow_id: str) -> str:
    return str(await client.redis.hget(client.workflows.keys(workflow_id).meta, "state") or "")


async def test_creation_killed_between_chunks_is_resumed_and_nothing_runs_before_the_seal(
    client: Client, settings: Settings, start_worker: Callable[..., Proc], effects: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A creator process is killed -9 after two of five chunks: the workflow reads `creating`,
    its keys expire unless it is completed, a relay pass releases nothing, another spec under
    the key is a conflict; the same create again resumes it (same ids) and it runs once."""
    monkeypatch.setattr(service, "CHUNK_NODES", 10)
    key, children = "big-resume", 40  # 42 nodes: 5 chunks of 10
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "wfscaletasks.py"), key, str(children), "10", "2"],
        env=process_env(settings), capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    wf_id = service.workflow_id_for(key)
    wk = client.workflows.keys(wf_id)

    view = await client.get_workflow(wf_id)
    assert view.state == "creating" and len(view.nodes) == 20
    assert 0 < await client.redis.ttl(wk.meta) <= service.CREATING_TTL_S  # abandoned: expires
    relay = Relay(client.scripts, client.settings)  # what any relay or sweeper would do now
    step = await relay.follow_up(wk, await relay.wf.apply(wk, "pending"))
    assert step.state == "creating" and not step.ready
    assert (await client.cancel_workflow(wf_id)).state == "creating"  # cannot start it either
    assert await queued(client) == 0
    with pytest.raises(IdempotencyConflict):
        await client.create_workflow(key, fan_nodes(children + 1))
    assert await wf_state(client, wf_id) == "creating"

    created = await client.create_workflow(key, fan_nodes(children))
    assert not created.duplicate and created.workflow_id == wf_id
    assert created.jobs == {n.key: node_job_id(wf_id, QUEUE, n.key) for n in fan_nodes(children)}
    assert await client.redis.ttl(wk.meta) == -1 and await wf_state(client, wf_id) == "running"
    assert await client.workflows.check(wf_id) == []
    assert await queued(client) == 1  # the root, released by the seal
    again = await client.create_workflow(key, fan(children))  # the same DAG, built by chord
    assert again.duplicate and again.jobs == created.jobs

    start_worker(f"{QUEUE}:8", JOBQ_TEST_EFFECTS_FILE=str(effects))

    async def ended() -> str | None:
        state = await wf_state(client, wf_id)
        return state if state in FINAL else None

    assert await eventually(ended, timeout=60, what="the workflow to end") == "succeeded"
    counts = runs(effects)
    assert len(counts) == children + 2 and set(counts.values()) == {1}
    assert await client.workflows.check(wf_id) == []


@pytest.mark.any_server
async def test_http_reads_creating_refuses_another_spec_and_resumes(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over HTTP: a create cut off after its first chunk (Redis gone for it) leaves a
    `creating` workflow that GET shows as such; another spec under the key is 409 mid-creation;
    the same POST again completes it (202, not a duplicate), and a third is a duplicate."""
    monkeypatch.setattr(service, "CHUNK_NODES", 4)

    def spec(children: int) -> dict[str, Any]:
        nodes = [{"key": "root", "type": "wf-s-node", "payload": {"name": "root"}},
                 *({"key": f"c{i}", "type": "wf-s-node", "payload": {"name": f"c{i}"},
                    "deps": [{"node": "root"}]} for i in range(children))]
        return {"idempotencyKey": "http-big", "nodes": nodes}

    real = WorkflowScripts.create_chunk
    calls = 0

    async def cut_off(self: WorkflowScripts, *args: Any, **kw: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RedisConnectionError("the creator lost Redis")
        return await real(self, *args, **kw)

    monkeypatch.setattr(WorkflowScripts, "create_chunk", cut_off)
    first = await api.post("/workflows", json=spec(10))
    assert first.status_code >= 500, first.text
    monkeypatch.setattr(WorkflowScripts, "create_chunk", real)
    wf_id = service.workflow_id_for("http-big")
    read = await api.get(f"/workflows/{wf_id}")
    assert read.status_code == 200 and read.json()["state"] == "creating", read.text
    assert len(read.json()["nodes"]) == 4
    assert_error(await api.post("/workflows", json=spec(11)), 409)
    resumed = await api.post("/workflows", json=spec(10))
    assert resumed.status_code == 202 and resumed.json()["duplicate"] is False, resumed.text
    again = await api.post("/workflows", json=spec(10))
    assert again.status_code == 200 and again.json()["jobs"] == resumed.json()["jobs"]
    read = await api.get(f"/workflows/{wf_id}")
    assert read.json()["state"] == "running" and len(read.json()["nodes"]) == 11


async def test_fan_out_settled_in_steps_exactly_once_through_a_relay_killed_between_steps(
    client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker: the test plays the relays. The root's outcome settles 300 dependents 50 at a
    time, released 20 per call; the first relay dies after two release calls, a second one
    takes the same outbox entry (as after its lease) and finishes: every child released once,
    one job each, every counter sound, no settle entry left."""
    monkeypatch.setattr(wf_scripts, "SETTLE_MOST", 50)
    monkeypatch.setattr(relay_module, "RELEASE_BATCH", 20)
    children = 300
    created = await client.create_workflow("big-settle", fan(children))
    wf_id = created.workflow_id
    wk = client.workflows.keys(wf_id)
    assert await queued(client) == 1
    wf_field = await client.redis.hget(client.keys(QUEUE).job(created.jobs["root"]), "wf")
    entry = json.dumps({"w": wf_field, "o": "S", "d": json.dumps({"name": "root"})})

    dying = Relay(client.scripts, client.settings)
    calls = 0
    real_release = dying.wf.release

    async def release_then_die(*args: Any, **kw: Any) -> list[int]:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise ConnectionError("killed")
        return await real_release(*args, **kw)

    dying.wf.release = release_then_die  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await dying.apply_entry(entry)
    view = await client.get_workflow(wf_id)
    assert 0 < view.counts["released"] - 0 < children + 1  # cut short mid fan-out
    assert await client.redis.llen(f"{wk.base}:settle") > 0
    assert await queued(client) == 1 + 40

    await Relay(client.scripts, client.settings).apply_entry(entry)  # the next relay
    view = await client.get_workflow(wf_id)
    assert view.counts["released"] == children and view.counts["waiting"] == 1  # the join
    assert await queued(client) == 1 + children
    ids = await client.redis.lrange(client.keys(QUEUE).wait, 0, -1)
    assert len(set(ids)) == len(ids) == 1 + children
    assert await client.redis.exists(f"{wk.base}:settle", wk.key("ready")) == 0
    assert await client.workflows.check(wf_id) == []
    root = await client.get_job(created.jobs["root"])
    assert root.state is State.WAITING  # the test applied its outcome without running it


async def test_nodes_added_by_a_running_node_once_and_waited_on(
    client: Client, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    """A node adds five nodes after itself that the join must also wait on; its first attempt
    fails after adding, the retry adds the same (nothing new) after trying another spec under
    an added key (refused). Each added node runs once, the join once, after all of them; once
    the adding node has ended (or with its lease gone) adding is refused."""
    spec = [Node("expand", "wf-s-expand", {"name": "expand", "n": 5}),
            Node("join", "wf-s-sum", {"name": "join"}).after("expand")]
    created = await client.create_workflow("dynamic", spec)
    start_worker(f"{QUEUE}:4", JOBQ_TEST_EFFECTS_FILE=str(effects))

    async def ended() -> str | None:
        state = await wf_state(client, created.workflow_id)
        return state if state in FINAL else None

    assert await eventually(ended, timeout=60, what="the workflow to end") == "succeeded"
    counts = runs(effects)
    assert counts == {"expand": 2, "conflict": 1, "join": 1, **{f"x{i}": 1 for i in range(5)}}
    view = await client.get_workflow(created.workflow_id, results=True)
    assert len(view.nodes) == 7 and await client.workflows.check(created.workflow_id) == []
    join = next(n for n in view.nodes if n.key == "join")
    assert join.result["saw"] == ["expand", *(f"x{i}" for i in range(5))]
    assert sorted(d["node"] for d in join.deps) == join.result["saw"]

    q = client.keys(QUEUE)
    with pytest.raises(LeaseLost):  # a zombie of the adding node: its lease is gone
        await add_nodes(client, q, created.jobs["expand"], "stale-token", [item("late")])
    wk = client.workflows.keys(created.workflow_id)
    raw = await client.scripts.call("wf_add_nodes", [wk.meta, wk.prefix_key],
                                    [0, 0, 1, 0, "late", "af", '{"d":[]}', ""])
    assert int(raw[0]) == -4  # the workflow (and the adding node) ended: refused
    assert len((await client.get_workflow(created.workflow_id)).nodes) == 7


def _script_names() -> dict[str, str]:
    return {hashlib.sha1(script_source(n).encode()).hexdigest(): n for n in SCRIPT_NAMES}


@pytest.mark.skipif(SERVER_KIND != "valkey", reason="the 20,000-node run is on Valkey only "
                    "(test time budget); the rules it checks are tested on every server above")
async def test_fan_out_fan_in_of_20000_nodes(
    client: Client, start_worker: Callable[..., Proc], effects: Path,
) -> None:
    """root -> 20,000 children -> join on two real workers: every node runs once, the join
    once, after all, with every result readable; prints the creation time and the longest
    script calls SLOWLOG saw (no timed assertion: the figure is the point)."""
    children = 20_000
    redis: Any = client.redis
    old = await redis.config_get("slowlog-*")
    await redis.config_set("slowlog-log-slower-than", 2000)  # µs
    await redis.config_set("slowlog-max-len", 10_000)
    await redis.slowlog_reset()
    try:
        began = time.monotonic()
        created = await client.create_workflow("twenty-thousand", fan(children))
        creation_s = time.monotonic() - began
        for _ in range(2):
            start_worker(f"{QUEUE}:32", JOBQ_TEST_EFFECTS_FILE=str(effects))

        async def ended() -> str | None:
            state = await wf_state(client, created.workflow_id)
            return state if state in FINAL else None

        assert await eventually(ended, timeout=240, what="the workflow to end") == "succeeded"
        total_s = time.monotonic() - began
        slow = await redis.slowlog_get(10_000)
    finally:
        await redis.config_set("slowlog-log-slower-than", old["slowlog-log-slower-than"])
        await redis.config_set("slowlog-max-len", old["slowlog-max-len"])
    counts = runs(effects)
    assert len(counts) == children + 2 and set(counts.values()) == {1}
    wk = client.workflows.keys(created.workflow_id)
    results: dict[str, Any] = {}
    cursor = 0
    while True:
        cursor, page = await redis.hscan(wk.key("res"), cursor, count=2000)
        results.update(page)
        if cursor == 0:
            break
    names = await redis.hgetall(wk.key("names"))
    assert {names[i]: json.loads(r)["name"] for i, r in results.items()} == {
        n: n for n in ["root", "join", *(f"c{i}" for i in range(children))]}
    assert await client.workflows.check(created.workflow_id) == []
    shas = _script_names()
    scripts = sorted(((e["duration"], shas.get(_arg(e, 1), _arg(e, 0))) for e in slow
                      if _arg(e, 0).lower() in ("evalsha", "eval", "evalsha_ro")), reverse=True)
    per: dict[str, list[int]] = {}
    for us, name in scripts:
        per.setdefault(name, []).append(us)
    print(f"\n20,000-node fan-out/fan-in: created in {creation_s:.2f} s, ended after "
          f"{total_s:.1f} s; script calls over 2 ms (count, longest): "
          + ", ".join(f"{name} {len(v)} {max(v) / 1000:.1f} ms"
                      for name, v in sorted(per.items(), key=lambda kv: -max(kv[1]))))


def _arg(entry: dict[str, Any], n: int) -> str:
    command = entry.get("command", b"")
    parts = (command.decode(errors="replace") if isinstance(command, bytes)
             else str(command)).split()
    return parts[n] if len(parts) > n else ""
