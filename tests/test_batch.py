"""Bulk enqueue: ``POST /jobs/batch`` and ``Client.enqueue_many`` on a real Redis, the jobs
then run by a real worker. One bad job refuses only itself; the batch costs one script call per
queue and chunk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from api_fixtures import assert_error, welcome
from fixtures import Proc, command_stats, eventually, reset_command_stats
from redis.asyncio import Redis

from jobq.client import Client, EnqueueResult, JobRequest
from jobq.errors import IdempotencyConflict, InvalidPayload, UnknownTask
from jobq.jobs import State
from jobq.keys import BATCH_MAX_JOBS, DEFAULT_PRIORITY
from jobq.scripts import ENQUEUE_CHUNK
from jobq.settings import Settings
from jobq.sync import SyncClient
from jobq.tasks import Registry


def report(key: str) -> dict[str, Any]:
    return {"type": "generate-report", "idempotencyKey": key,
            "payload": {"reportId": key, "format": "csv"}}


async def test_a_batch_with_one_bad_job_creates_the_others_in_order(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc],
) -> None:
    assert (await api.post("/jobs", json=welcome("taken", name="First"))).status_code == 202
    jobs = [
        welcome("b:0"),
        {"type": "welcome-email", "payload": {"email": "x@example.com", "name": "X"}},  # no key
        {"type": "no-such-task", "idempotencyKey": "b:2", "payload": {}},
        {**welcome("b:3"), "payload": {"email": "not an address", "name": "Y"}},
        welcome("taken", name="Other"),  # the key is known with other content
        welcome("taken", name="First"),  # a repeat: the same job
        welcome("b:6"),
    ]
    answer = await api.post("/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    items = body["items"]
    assert [i["status"] for i in items] == [
        "accepted", "error", "error", "error", "error", "accepted", "accepted"]
    assert [i["httpStatus"] for i in items] == [202, 422, 422, 422, 409, 200, 202]
    assert [i["error"]["code"] for i in items if i["status"] == "error"] == [
        "validation_error", "unknown_task", "invalid_payload", "conflict"]
    assert items[1]["error"]["details"][0]["loc"] == ["body", "jobs", 1, "idempotencyKey"]
    assert items[3]["error"]["details"][0]["loc"] == ["email"]
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 1, 4)
    single = (await api.post("/jobs", json=welcome("taken", name="First"))).json()
    assert items[5]["jobId"] == single["jobId"] and items[5]["duplicate"] is True
    start_worker("email-queue:2")
    for item in (items[0], items[6]):
        async def done(job_id: str = item["jobId"]) -> bool:
            return (await client.get_job(job_id)).state is State.COMPLETED

        await eventually(done, timeout=30, what=f"job {item['jobId']} to complete")
    again = (await api.post("/jobs/batch", json={"jobs": [welcome("b:0"), welcome("b:6")]})).json()
    assert [i["duplicate"] for i in again["items"]] == [True, True]
    assert [i["jobId"] for i in again["items"]] == [items[0]["jobId"], items[6]["jobId"]]


async def test_a_batch_job_keeps_the_priority_it_asked_for(
    api: httpx.AsyncClient, client: Client,
) -> None:
    """options.priority of a batch job is stored, as for POST /jobs; unset keeps the default."""
    jobs = [{**welcome("p:9"), "options": {"priority": 9}},
            {**welcome("p:0"), "options": {"priority": 0}}, welcome("p:default")]
    answer = await api.post("/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 200, answer.text
    ids = [item["jobId"] for item in answer.json()["items"]]
    stored = [(await client.get_job(job_id)).priority for job_id in ids]
    assert stored == [9, 0, DEFAULT_PRIORITY]


async def test_the_envelope_is_refused_as_a_whole(api: httpx.AsyncClient) -> None:
    too_many = {"jobs": [welcome(f"k{n}") for n in range(BATCH_MAX_JOBS + 1)]}
    for body in ({}, {"jobs": []}, {"jobs": {"a": 1}}, {"jobs": [1]}, too_many,
                 {"jobs": [welcome("k")], "extra": 1}):
        assert_error(await api.post("/jobs/batch", json=body), 422, "validation_error")
    assert_error(await api.post("/jobs/batch", content=b"{", headers={
        "content-type": "application/json"}), 422, "validation_error")
    assert_error(await api.post("/jobs/batch", content=b"{}"), 415)
    assert (await api.get("/queues")).json()["queues"][0]["waiting"] == 0


async def test_enqueue_many_is_one_script_call_per_queue_and_chunk(
    client: Client, redis: Redis,
) -> None:
    emails = [JobRequest("welcome-email", f"e{n}", {"email": "a@example.com", "name": "A"})
              for n in range(ENQUEUE_CHUNK + 10)]
    reports = [JobRequest("generate-report", f"r{n}", {"reportId": str(n)}, delay_s=60)
               for n in range(5)]
    bad = [JobRequest("nope", "x", {}), JobRequest("welcome-email", "y", {"email": 1})]
    mixed = [*emails[:3], bad[0], *reports, bad[1], *emails[3:]]
    await client.scripts.load()
    await reset_command_stats(redis)
    results = await client.enqueue_many(mixed)
    stats = await command_stats(redis)
    assert stats["cmdstat_evalsha"]["calls"] == 3  # email-queue: 2 chunks, report-queue: 1
    assert "cmdstat_eval" not in stats
    assert isinstance(results[3], UnknownTask) and isinstance(results[9], InvalidPayload)
    ok = [r for r in results if isinstance(r, EnqueueResult)]
    assert len(ok) == len(emails) + len(reports) and not any(r.duplicate for r in ok)
    assert [r.queue for r in results[4:9] if isinstance(r, EnqueueResult)] == ["report-queue"] * 5
    counts = await client.counts()
    assert counts["email-queue"]["waiting"] == len(emails)
    assert counts["report-queue"]["delayed"] == len(reports)
    # Submission order is claim order: the first job of the batch is the next to run.
    first = results[0]
    assert isinstance(first, EnqueueResult)
    assert await redis.lindex(client.keys("email-queue").wait, -1) == first.job_id
    single = await client.enqueue("welcome-email", "e0", {"email": "a@example.com", "name": "A"})
    assert single.duplicate and single.job_id == first.job_id
    conflict = await client.enqueue_many([JobRequest("welcome-email", "e1", {
        "email": "b@example.com", "name": "B"})])
    assert isinstance(conflict[0], IdempotencyConflict)


def test_the_sync_client_enqueues_many(settings: Settings, registry: Registry) -> None:
    with SyncClient(settings, registry) as sync:
        results = sync.enqueue_many([JobRequest("noop", f"n{n}", {"n": n}) for n in range(3)])
        assert [r.queue for r in results if isinstance(r, EnqueueResult)] == ["bench-queue"] * 3
        assert sync.counts()["bench-queue"]["waiting"] == 3
