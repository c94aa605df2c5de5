"""The workflow routes on the real app (in-process, real Redis): creation idempotent by key
(same spec: 200 and the same ids; another spec: 409), bad graphs and bad nodes refused with
422 and the error shape, the read view (counts, each node's job id and what it waits on) and
cancel. Runs without workers: nodes stay where the test puts them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_fixtures import assert_error
from wfhelpers import WF_TASKS

from jobq.settings import Settings

pytestmark = pytest.mark.any_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


def node(key: str, *deps: str | dict[str, str], type_: str = "wf-a") -> dict[str, Any]:
    return {"key": key, "type": type_, "payload": {"name": key},
            "deps": [d if isinstance(d, dict) else {"node": d} for d in deps]}


def body(key: str, *nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"idempotencyKey": key, "nodes": list(nodes), **extra}


async def test_create_read_repeat_conflict_and_cancel(api: httpx.AsyncClient) -> None:
    spec = body("http-wf", node("a"), node("b", type_="wf-b"),
                node("join", "a", {"node": "b", "policy": "ignore"}))
    created = await api.post("/workflows", json=spec)
    assert created.status_code == 202, created.text
    answer = created.json()
    assert answer["duplicate"] is False and set(answer["jobs"]) == {"a", "b", "join"}
    assert answer["jobs"]["b"].endswith("-wf-b")
    repeat = await api.post("/workflows", json=spec)
    assert repeat.status_code == 200 and repeat.json() == {**answer, "duplicate": True}
    other = body("http-wf", node("a"), node("b", type_="wf-b"), node("join", "a"))
    assert_error(await api.post("/workflows", json=other), 409, "conflict")

    view = (await api.get(f"/workflows/{answer['workflowId']}")).json()
    assert view["state"] == "running" and view["idempotencyKey"] == "http-wf"
    assert view["counts"] == {"waiting": 1, "released": 2, "succeeded": 0, "failed": 0,
                              "cancelled": 0, "dep_failed": 0, "skipped": 0}
    join = next(n for n in view["nodes"] if n["key"] == "join")
    assert join["state"] == "waiting" and sorted(join["waitingOn"]) == ["a", "b"]
    assert join["jobId"] == answer["jobs"]["join"]
    assert {"node": "b", "policy": "ignore", "state": "released"} in join["deps"]
    released = next(n for n in view["nodes"] if n["key"] == "a")
    job = (await api.get(f"/jobs/{released['jobId']}")).json()
    assert job["state"] == "waiting" and job["queue"] == "wf-a"

    cancelled = await api.post(f"/workflows/{answer['workflowId']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert {n["state"] for n in cancelled.json()["nodes"]} == {"cancelled"}
    assert (await api.get(f"/jobs/{released['jobId']}")).json()["state"] == "cancelled"
    assert (await api.post(f"/workflows/{answer['workflowId']}/cancel")).status_code == 200


@pytest.mark.parametrize(("nodes", "code", "needle"), [
    ([node("p", "q"), node("q", "p")], "invalid_workflow", "cycle"),
    ([node("p", "nope")], "invalid_workflow", "unknown node"),
    ([node("p", "p")], "invalid_workflow", "itself"),
    ([node("p"), node("p")], "invalid_workflow", "twice"),
    ([node("p", type_="no-such-task")], "unknown_task", "node 'p'"),
    ([{"key": "p", "type": "wf-a", "payload": {"add": 1}}], "invalid_payload", "node 'p'"),
])
async def test_bad_workflows_are_refused(
    api: httpx.AsyncClient, nodes: list[dict[str, Any]], code: str, needle: str,
) -> None:
    refused = assert_error(await api.post("/workflows", json=body(f"bad-{code}", *nodes)), 422,
                           code)
    assert needle in refused["message"]


async def test_unknown_workflow_and_bad_bodies(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/workflows/" + "0" * 32), 404, "not_found")
    assert_error(await api.get("/workflows/not-an-id"), 404, "not_found")
    assert_error(await api.post("/workflows/" + "0" * 32 + "/cancel"), 404, "not_found")
    assert_error(await api.post("/workflows", json={"nodes": []}), 422, "validation_error")
    assert_error(await api.post("/workflows", json=body(
        "pol", node("a"), node("b", {"node": "a", "policy": "maybe"}))), 422, "validation_error")
    empty = await api.post("/workflows", json=body("empty"))
    assert empty.status_code == 202
    view = (await api.get(f"/workflows/{empty.json()['workflowId']}")).json()
    assert view["state"] == "succeeded" and view["nodes"] == [] and view["endedAt"]
