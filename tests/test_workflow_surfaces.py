"""The workflow read pages, SSE and metrics on real servers: the listing filtered by state,
nodes and results paged by cursor (bad cursors and limits refused with the error shape), the
graph with a large group collapsed into counts, the node state changes and the end as
Server-Sent Events from a real API process while a real worker runs the nodes, and the
workflow series of /metrics (by state, outbox lag, duration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import ApiServer, assert_error
from fixtures import Proc, eventually, metrics_port
from prometheus_client.parser import text_string_to_metric_families
from wfhelpers import WF_TASKS, a, b, ended

from jobq import SyncClient
from jobq.client import Client
from jobq.errors import InvalidCursor, NotFound
from jobq.settings import Settings
from jobq.tasks import Registry
from jobq.workflows import chain, chord, group


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


def fan_in(parts: int) -> Any:
    return chord(group(*(a(f"part{i}", add=i) for i in range(parts))), b("sum"))


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


async def test_listing_nodes_graph_and_results_pages(api: httpx.AsyncClient,
                                                     client: Client) -> None:
    created = await client.create_workflow("pages", fan_in(6))
    other = await client.create_workflow("pages-empty", [])
    wf = created.workflow_id

    listed = (await api.get("/workflows")).json()
    assert {w["workflowId"] for w in listed["items"]} == {other.workflow_id, wf}
    running = (await api.get("/workflows", params={"state": "running"})).json()
    assert [w["workflowId"] for w in running["items"]] == [wf]
    assert running["items"][0]["counts"]["released"] == 6 and running["items"][0]["nodes"] == 7
    done = (await api.get("/workflows", params={"state": "succeeded"})).json()
    assert [w["workflowId"] for w in done["items"]] == [other.workflow_id]
    first = (await api.get("/workflows", params={"limit": 1})).json()
    assert len(first["items"]) == 1 and first["nextCursor"] == "1"
    second = (await api.get("/workflows", params={"limit": 1,
                                                  "cursor": first["nextCursor"]})).json()
    assert {first["items"][0]["workflowId"], second["items"][0]["workflowId"]} == {
        other.workflow_id, wf}
    assert second["nextCursor"] is None

    keys, cursor, pages = [], None, 0
    while True:
        page = (await api.get(f"/workflows/{wf}/nodes",
                              params={"limit": 3, **({"cursor": cursor} if cursor else {})})).json()
        keys += [n["key"] for n in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3 and keys == [*(f"part{i}" for i in range(6)), "sum"]
    tail = (await api.get(f"/workflows/{wf}/nodes", params={"cursor": "6"})).json()
    (join,) = tail["items"]
    assert join["state"] == "waiting" and join["waitingCount"] == 6 and join["deps"] == 6
    assert sorted(join["waitingOn"]) == [f"part{i}" for i in range(6)]
    assert join["jobId"] == created.jobs["sum"] and join["epoch"] == 0

    graph = (await api.get(f"/workflows/{wf}/graph")).json()
    group_entry, sum_entry = graph["entries"]
    assert group_entry["kind"] == "group" and group_entry["size"] == 6
    assert group_entry["counts"]["released"] == 6 and group_entry["depth"] == 0
    assert sum_entry["kind"] == "node" and sum_entry["keys"] == ["sum"]
    assert sum_entry["state"] == "waiting" and sum_entry["depth"] == 1
    assert len(sum_entry["waitingOn"]) == 6
    assert graph["edges"] == [{"source": group_entry["id"], "target": sum_entry["id"],
                               "policy": "require"}]

    assert (await api.get(f"/workflows/{wf}/results")).json() == {"items": [],
                                                                  "nextCursor": None}
    await client.cancel_workflow(wf)
    results = (await api.get(f"/workflows/{wf}/results", params={"limit": 7})).json()
    assert {r["key"]: r["state"] for r in results["items"]} == {
        **{f"part{i}": "cancelled" for i in range(6)}, "sum": "cancelled"}
    assert all(r["error"] for r in results["items"])


async def test_bad_cursors_limits_and_unknown_workflows(api: httpx.AsyncClient,
                                                        client: Client) -> None:
    wf = (await client.create_workflow("bad-params", fan_in(2))).workflow_id
    for path in ("/workflows", f"/workflows/{wf}/nodes", f"/workflows/{wf}/results"):
        for params in ({"cursor": "abc"}, {"cursor": "-1"}, {"cursor": "1" * 13},
                       {"limit": 0}, {"limit": 1001}, {"limit": "x"}):
            assert_error(await api.get(path, params=params), 422, "validation_error")
    assert_error(await api.get("/workflows", params={"state": "sleeping"}), 422,
                 "validation_error")
    beyond = (await api.get(f"/workflows/{wf}/nodes", params={"cursor": "99"})).json()
    assert beyond == {"items": [], "nextCursor": None}
    for path in ("nodes", "graph", "results", "events"):
        assert_error(await api.get(f"/workflows/{'0' * 32}/{path}"), 404, "not_found")
        assert_error(await api.get(f"/workflows/not-an-id/{path}"), 404, "not_found")
    paths = (await api.get("/openapi.json")).json()["paths"]
    for path in ("/workflows", "/workflows/{workflow_id}/nodes", "/workflows/{workflow_id}/graph",
                 "/workflows/{workflow_id}/results", "/workflows/{workflow_id}/events"):
        assert "get" in paths[path], path


async def test_a_large_fan_out_collapses_into_one_group(api: httpx.AsyncClient,
                                                        client: Client) -> None:
    created = await client.create_workflow("wide", chain(a("root"), fan_in(500)))
    graph = (await api.get(f"/workflows/{created.workflow_id}/graph")).json()
    assert [(e["kind"], e["size"], e["depth"]) for e in graph["entries"]] == [
        ("node", 1, 0), ("group", 500, 1), ("node", 1, 2)]
    root, parts, join = (e["id"] for e in graph["entries"])
    assert parts.startswith("g") and graph["entries"][1]["counts"]["waiting"] == 500
    assert len(graph["entries"][1]["keys"]) == 5
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {(root, parts),
                                                                    (parts, join)}


def read_events(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    out, event = [], ""
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            out.append((event, json.loads(line.removeprefix("data: "))))
    return out


@pytest.mark.timeout(60)
async def test_events_follow_the_nodes_to_the_end_and_results_outlive_the_jobs(
    start_api: Callable[..., ApiServer], start_worker: Callable[..., Proc], client: Client,
    settings: Settings, tmp_path: Path,
) -> None:
    server = start_api()
    created = await client.create_workflow("sse", chain(a("s1", add=1, sleep=0.3),
                                                        b("s2", add=2)))
    wf = created.workflow_id
    lines: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("GET", f"/workflows/{wf}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            worker = start_worker("wf-a:2", "wf-b:2",
                                  JOBQ_TEST_EFFECTS_FILE=str(tmp_path / "effects.txt"),
                                  JOBQ_COMPLETED_KEEP="0")
            async for line in stream.aiter_lines():
                lines.append(line)
        events = read_events(lines)
        assert events[0][0] == "workflow" and events[0][1]["state"] == "running"
        nodes = [(d["key"], d["state"]) for e, d in events if e == "node"]
        assert ("s1", "succeeded") in nodes and ("s2", "succeeded") in nodes
        assert nodes.index(("s1", "succeeded")) < nodes.index(("s2", "succeeded"))
        assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
        assert events[-1][1]["endedAt"]

        view = await ended(client, wf)
        # JOBQ_COMPLETED_KEEP=0: the queues trimmed the node jobs; the results stay.
        for n in view.nodes:
            assert (await http.get(f"/jobs/{n.job_id}")).status_code in (404, 410)
        results = (await http.get(f"/workflows/{wf}/results")).json()["items"]
        assert [(r["key"], r["result"]["value"]) for r in results] == [("s1", 1), ("s2", 3)]

        # The worker's relay ended the workflow: it observed its duration, once.
        port = await metrics_port(worker)
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        counts = samples(text, "jobq_workflow_duration_seconds_count")
        assert counts == {(("state", "succeeded"),): 1.0, (("state", "failed"),): 0.0,
                          (("state", "cancelled"),): 0.0}, counts


async def test_metrics_show_workflows_by_state_and_outbox_lag(api: httpx.AsyncClient,
                                                              client: Client) -> None:
    wf = (await client.create_workflow("metrics", fan_in(3))).workflow_id
    lone = await client.create_workflow("metrics-lag", [a("x")])
    await client.create_workflow("metrics-empty", [])
    text = (await api.get("/metrics")).text
    states = samples(text, "jobq_workflows")
    assert states[(("state", "running"),)] == 2 and states[(("state", "succeeded"),)] == 1
    assert samples(text, "jobq_workflow_outbox_entries")[(("queue", "wf-a"),)] == 0
    assert samples(text, "jobq_workflow_outbox_oldest_seconds")[(("queue", "wf-a"),)] == 0

    # A node job cancelled on its own in a queue no worker serves: its outcome waits in the
    # outbox, and the lag shows it.
    assert (await api.post(f"/jobs/{lone.jobs['x']}/cancel")).status_code == 200

    async def lagging() -> str | None:
        text = (await api.get("/metrics")).text
        entries = samples(text, "jobq_workflow_outbox_entries")
        return text if entries.get((("queue", "wf-a"),)) == 1 else None

    await eventually(lagging, timeout=5, what="the outbox entry in /metrics")

    async def aged() -> str | None:  # the age grows with the clock while nothing applies it
        text = (await api.get("/metrics")).text
        age = samples(text, "jobq_workflow_outbox_oldest_seconds")[(("queue", "wf-a"),)]
        assert age < 60
        return text if age >= 1 else None

    text = await eventually(aged, timeout=10, what="the outbox entry to age")
    assert samples(text, "jobq_workflow_outbox_entries")[(("queue", "wf-b"),)] == 0

    # A cancel through the API that ends a workflow at once (its nodes were only queued or
    # waiting) is observed by the API process, once.
    assert set(samples(text, "jobq_workflow_duration_seconds_count").values()) == {0}
    cancelled = await api.post(f"/workflows/{wf}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    await api.post(f"/workflows/{wf}/cancel")
    text = (await api.get("/metrics")).text
    assert samples(text, "jobq_workflow_duration_seconds_count") == {
        (("state", "succeeded"),): 0, (("state", "failed"),): 0, (("state", "cancelled"),): 1}


async def test_dashboard_fragments_and_the_retry_action(api: httpx.AsyncClient,
                                                        client: Client) -> None:
    wf = (await client.create_workflow("ui-pages", fan_in(4))).workflow_id
    listing = await api.get("/ui/f/workflows", params={"state": "running"})
    assert listing.status_code == 200 and f'data-workflow="{wf}"' in listing.text
    page = await api.get(f"/ui/f/workflows/{wf}")
    assert page.status_code == 200
    assert 'class="entry group"' in page.text and "4 \u00d7 part0" in page.text
    assert f'data-post="/workflows/{wf}/cancel"' in page.text
    assert (await api.get(f"/ui/f/workflows/{'0' * 32}")).status_code == 404
    assert (await api.get("/ui/f/workflows/x", params={"cursor": "x"})).status_code == 404

    await client.cancel_workflow(wf)
    page = await api.get(f"/ui/f/workflows/{wf}")
    retry = api.post(f"/ui/f/workflows/{wf}/retry", params={"mode": "failed_only"})
    if hasattr(client.workflows, "retry"):  # wf-reopen's retry, where merged
        assert "retry?mode=failed_only" in page.text
        assert (await retry).status_code == 202
    else:
        assert "retry?mode" not in page.text and 'data-post="/workflows/' not in page.text
        assert_error(await retry, 404, "not_found")
    assert_error(await api.post(f"/ui/f/workflows/{wf}/retry", params={"mode": "some"}), 422,
                 "validation_error")


def test_sync_client_reads_the_same_pages(settings: Settings, registry: Registry) -> None:
    with SyncClient(settings, registry) as sync:
        wf = sync.create_workflow("sync-pages", fan_in(4)).workflow_id
        assert [s.workflow_id for s in sync.list_workflows("running").items] == [wf]
        page = sync.workflow_nodes(wf, limit=4)
        assert [n.key for n in page.items] == [f"part{i}" for i in range(4)]
        assert page.next_cursor == "4"
        assert [e.size for e in sync.workflow_graph(wf).entries] == [4, 1]
        assert sync.workflow_results(wf).items == []
        with pytest.raises(InvalidCursor):
            sync.workflow_nodes(wf, cursor="x")
        with pytest.raises(NotFound):
            sync.workflow_graph("0" * 32)
