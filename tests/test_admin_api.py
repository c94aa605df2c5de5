"""The admin API over HTTP and its CLI twins: jobs by state, workers, throughput, bulk DLQ
replay with dry run and idempotency, discarding a DLQ entry; with the caller logged."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from api_fixtures import ApiServer, assert_error
from fixtures import Proc, eventually, logged
from test_api_dlq import dead_letter
from test_cancel import post_job
from test_cli import assert_one_line_error, jobq

from jobq.client import Client
from jobq.settings import Settings


async def test_jobs_by_state_page_in_queue_order_and_newest_first(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    ids = [await post_job(api, "sleep", f"l-{n}", {"seconds": 0}) for n in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"state": "waiting", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/queues/report-queue/jobs", params=params)).json()
        assert set(page) == {"queue", "state", "items", "nextCursor"}
        seen += [j["jobId"] for j in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ids  # the first created runs first
    assert all(j["state"] == "waiting" for j in page["items"])
    empty = (await api.get("/queues/report-queue/jobs", params={"state": "completed"})).json()
    assert empty == {"queue": "report-queue", "state": "completed", "items": [],
                     "nextCursor": None}
    assert_error(await api.get("/queues/report-queue/jobs", params={"state": "nope"}), 422,
                 "validation_error")
    assert_error(await api.get("/queues/report-queue/jobs", params={"cursor": "x"}), 422,
                 "validation_error")
    assert_error(await api.get("/queues/report-queue/jobs", params={"limit": 501}), 422)
    assert_error(await api.get("/queues/nope/jobs"), 404, "not_found")

    cli = jobq(settings, "jobs", "report-queue", "--limit", "3", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == (await api.get(
        "/queues/report-queue/jobs", params={"limit": 3})).json()
    assert_one_line_error(jobq(settings, "jobs", "nope"), 3, "unknown queue")


async def test_workers_throughput_and_finished_pages(
    api: httpx.AsyncClient, client: Client, settings: Settings,
    start_worker: Callable[..., Proc],
) -> None:
    await dead_letter(api, start_worker, 2)  # 2 dead-lettered, then that worker stopped
    worker = start_worker("report-queue:3", "email-queue:1")
    ids = [await post_job(api, "sleep", f"t-{n}", {"seconds": 0}) for n in range(4)]

    async def all_done() -> bool:
        page = (await api.get("/queues/report-queue/jobs",
                              params={"state": "completed", "limit": 10})).json()
        return len(page["items"]) == 4

    await eventually(all_done, what="four completed jobs")
    page = (await api.get("/queues/report-queue/jobs", params={"state": "completed"})).json()
    assert sorted(j["jobId"] for j in page["items"]) == sorted(ids)
    finished = [j["finishedAt"] for j in page["items"]]
    assert finished == sorted(finished, reverse=True)

    series = (await api.get("/queues/report-queue/throughput")).json()
    assert len(series["minutes"]) == 60
    assert sum(m["completed"] for m in series["minutes"]) == 4
    assert sum(m["failed"] for m in series["minutes"]) == 2

    async def listed() -> dict[str, object] | None:
        body = (await api.get("/workers")).json()
        mine = [w for w in body["workers"] if w["pid"] == worker.pid]
        return mine[0] if mine and len(mine[0]["queues"]) == 2 else None

    found = await eventually(listed, what="the worker's heartbeats")
    assert found["pid"] == worker.pid and found["stale"] is False
    assert found["concurrency"] == 4
    assert {q["queue"] for q in found["queues"]} == {"report-queue", "email-queue"}
    cli = jobq(settings, "workers", "--json")
    assert any(w["workerId"] == found["workerId"] for w in json.loads(cli.stdout)["workers"])
    cli = jobq(settings, "throughput", "report-queue", "--json")
    assert sum(m["completed"] for m in json.loads(cli.stdout)["minutes"]) == 4


async def test_bulk_replay_dry_run_filters_idempotency_and_discard(
    start_api: Callable[..., ApiServer], settings: Settings, client: Client,
    start_worker: Callable[..., Proc],
) -> None:
    server = start_api(JOBQ_API_TOKENS="secret-admin-token")
    headers = {"Authorization": "Bearer secret-admin-token"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as api:
        await dead_letter(api, start_worker, 3)
        dry = await api.post("/dlq/replay", json={"queue": "report-queue", "dryRun": True})
        assert dry.status_code == 200, dry.text
        assert dry.json() == {"matched": 3, "dryRun": True, "truncated": False, "replayed": []}
        none = await api.post("/dlq/replay", json={"reasonContains": "no such text",
                                                   "dryRun": True})
        assert none.json()["matched"] == 0
        typed = await api.post("/dlq/replay", json={"type": "flaky", "dryRun": True,
                                                    "failedAfter": "2000-01-01T00:00:00Z"})
        assert typed.json()["matched"] == 3

        body = {"queue": "report-queue", "idempotencyKey": "bulk-1"}
        first = (await api.post("/dlq/replay", json=body)).json()
        assert first["matched"] == 3 and len(first["replayed"]) == 3
        assert not any(item["duplicate"] for item in first["replayed"])
        again = (await api.post("/dlq/replay", json=body)).json()
        assert [i["jobId"] for i in again["replayed"]] == [i["jobId"] for i in first["replayed"]]
        assert all(item["duplicate"] for item in again["replayed"])
        assert (await client.counts())["report-queue"]["waiting"] == 3  # one job per entry

        target = first["replayed"][0]["dlqId"]
        by_id = (await api.post("/dlq/replay", json={"ids": [target, "report-queue-999"],
                                                     "dryRun": True})).json()
        assert by_id["matched"] == 1
        assert_error(await api.post("/dlq/replay", json={"dryRun": "maybe"}), 422)
        assert_error(await api.post("/dlq/replay", json={"bogus": 1}), 422)

        assert (await api.delete(f"/dlq/{target}")).status_code == 204
        assert_error(await api.get(f"/dlq/{target}"), 404)
        assert_error(await api.delete(f"/dlq/{target}"), 404, "not_found")
        assert_error(await api.post(f"/dlq/{target}/replay"), 404)
        assert_error(await api.delete("/dlq/garbage"), 404)

    discarded = await logged(server.proc, "dlq.discarded")
    assert discarded and discarded[0]["dlqId"] == target
    assert discarded[0]["by"].startswith("token:") and "secret-admin-token" not in server.proc.output()

    cli = jobq(settings, "dlq", "replay-many", "--queue", "report-queue", "--dry-run", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["matched"] == 2
    assert jobq(settings, "dlq", "discard", "report-queue-2").returncode == 0
    assert_one_line_error(jobq(settings, "dlq", "discard", "report-queue-2"), 3, "no DLQ entry")


async def test_pause_resume_and_cancel_from_the_cli(settings: Settings, client: Client) -> None:
    created = jobq(settings, "enqueue", "sleep", "--key", "cli-c", "--payload", '{"seconds": 0}',
                   "--json")
    job_id = json.loads(created.stdout)["jobId"]
    paused = jobq(settings, "pause", "report-queue", "--json")
    assert json.loads(paused.stdout) == {"queue": "report-queue", "paused": True}
    assert (await client.counts())["report-queue"]["paused"] is True
    assert json.loads(jobq(settings, "resume", "report-queue", "--json").stdout)["paused"] is False
    cancel = jobq(settings, "cancel", job_id, "--json")
    assert json.loads(cancel.stdout) == {"jobId": job_id, "state": "cancelled",
                                         "cancelRequested": True}
    assert_one_line_error(jobq(settings, "cancel", job_id), 1, "finished already")
    assert_one_line_error(jobq(settings, "cancel", "nope"), 3, "no job")
    assert_one_line_error(jobq(settings, "pause", "nope"), 3, "unknown queue")
