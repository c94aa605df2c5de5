"""The HTTP API end to end: a real ``jobq api`` process, real workers, a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fixtures import Proc, process_env
from test_api_support import ApiServer, api, assert_error, start_api, wait_until, welcome

from jobq.settings import Settings

__all__ = ["api", "start_api"]  # fixtures used below


async def test_seed_walkthrough(
    api: httpx.AsyncClient, start_worker: Callable[..., Proc]
) -> None:
    """POST a welcome email, see it wait while no worker runs, then complete once one does."""
    created = await api.post("/jobs", json=welcome("signup:ada"))
    assert created.status_code == 202, created.text
    body = created.json()
    assert body == {"status": "accepted", "jobId": body["jobId"], "duplicate": False}
    job_id = body["jobId"]
    assert "signup:ada" not in job_id  # derived from the key, never the key itself (R2)

    status = (await api.get(f"/jobs/{job_id}/status")).json()
    assert status["state"] == "waiting"
    assert status["processedAt"] is None
    assert set(status) == {"jobId", "type", "queue", "state", "attempts", "maxAttempts",
                           "createdAt", "processedAt", "finishedAt", "failedReason"}
    assert (status["jobId"], status["type"], status["queue"]) == (
        job_id, "welcome-email", "email-queue")

    start_worker("email-queue:2")

    async def completed() -> dict[str, Any] | None:
        view = (await api.get(f"/jobs/{job_id}/status")).json()
        return view if view["state"] == "completed" else None

    done = await wait_until(completed, what="the job to complete")
    assert done["processedAt"] and done["finishedAt"] and done["attempts"] == 1
    assert done["processedAt"].endswith("Z") and done["failedReason"] is None

    full = (await api.get(f"/jobs/{job_id}")).json()
    assert full["payload"] == {"email": "ada@example.com", "name": "Ada"}
    assert full["result"]["email"] == "ada@example.com"
    assert [h["outcome"] for h in full["history"]] == ["completed"]
    assert full["idempotencyKey"] == "signup:ada"


async def test_queues_match_the_cli(
    api: httpx.AsyncClient, spawn: Callable[..., Proc], settings: Settings
) -> None:
    """GET /queues and ``jobq queues --json`` print exactly the same thing."""
    assert (await api.post("/jobs", json=welcome("q1"))).status_code == 202
    assert (await api.post("/jobs", json={
        "type": "flaky", "idempotencyKey": "q2", "payload": {},
        "options": {"delaySeconds": 600}})).status_code == 202
    body = (await api.get("/queues")).json()
    by_queue = {q["queue"]: q for q in body["queues"]}
    assert by_queue["email-queue"]["waiting"] == 1
    assert by_queue["report-queue"]["delayed"] == 1
    assert set(by_queue["cleanup-queue"]) == {"queue", "waiting", "active", "delayed",
                                              "completed", "failed", "cancelled", "dlq",
                                              "paused"}

    cli = spawn(["queues", "--json"], process_env(settings), name="queues")
    assert cli.wait(timeout=30) == 0, cli.output()
    assert json.loads(cli.output()) == body


async def test_duplicate_and_conflict(api: httpx.AsyncClient) -> None:
    first = await api.post("/jobs", json=welcome("dup"))
    again = await api.post("/jobs", json=welcome("dup"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "accepted", "jobId": first.json()["jobId"],
                            "duplicate": True}

    other_payload = await api.post("/jobs", json=welcome("dup", name="Grace"))
    assert_error(other_payload, 409, "conflict")
    other_type = await api.post("/jobs", json={"type": "flaky", "idempotencyKey": "dup",
                                               "payload": {}})
    assert_error(other_type, 409, "conflict")


async def test_concurrent_creates_make_one_job(api: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(api.post("/jobs", json=welcome("race")) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert len({a.json()["jobId"] for a in answers}) == 1
    counts = {q["queue"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert counts["email-queue"]["waiting"] == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "welcome-email", "payload": {"email": "a@b.co", "name": "A"}},
         "validation_error"),  # missing idempotency key
        ({"type": "welcome-email", "idempotencyKey": "", "payload": {}}, "validation_error"),
        ({"type": "no-such-task", "idempotencyKey": "k", "payload": {}}, "unknown_task"),
        ({"type": "welcome-email", "idempotencyKey": "k", "payload": {"email": "nope"}},
         "invalid_payload"),
        ({"type": "welcome-email", "idempotencyKey": "k", "payload": ["a@b.co"]},
         "validation_error"),  # payload not an object
        ({"type": "welcome-email", "idempotencyKey": "k", "payload": "x"}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {}, "options": {"attempts": 0}},
         "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {},
          "options": {"backoff": {"type": "linear", "delaySeconds": 1}}}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {},
          "options": {"delaySeconds": -1}}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {}, "options": {"retries": 2}},
         "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {}, "jobId": "x"},
         "validation_error"),
    ],
)
async def test_invalid_requests_are_422(
    api: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    error = assert_error(await api.post("/jobs", json=body), 422, code)
    if code == "invalid_payload":
        assert error["details"][0]["loc"] == ["email"]
    counts = (await api.get("/queues")).json()["queues"]
    assert all(q["waiting"] == q["delayed"] == 0 for q in counts)  # nothing was stored


async def test_malformed_json_is_422_and_other_media_types_415(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", content=b"{not json",
                              headers={"content-type": "application/json"})
    assert_error(response, 422, "validation_error")
    lone_surrogate = b'{"type": "flaky", "idempotencyKey": "\\ud800", "payload": {}}'
    response = await api.post("/jobs", content=lone_surrogate,
                              headers={"content-type": "application/json; charset=utf-8"})
    assert_error(response, 422, "validation_error")
    as_text = await api.post("/jobs", content=json.dumps(welcome("text")).encode(),
                             headers={"content-type": "text/plain"})
    assert_error(as_text, 415, "unsupported_media_type")


async def test_options_are_applied(api: httpx.AsyncClient) -> None:
    created = await api.post("/jobs", json={
        "type": "flaky", "idempotencyKey": "opts", "payload": {"failTimes": 1},
        "options": {"attempts": 7, "backoff": {"type": "exponential", "delaySeconds": 2},
                    "delaySeconds": 300}})
    assert created.status_code == 202, created.text
    job = (await api.get(f"/jobs/{created.json()['jobId']}")).json()
    assert job["state"] == "delayed"
    assert job["maxAttempts"] == 7
    assert job["backoff"] == {"type": "exponential", "delaySeconds": 2.0}


@pytest.fixture
def small_body_api(start_api: Callable[..., ApiServer]) -> Iterator[httpx.Client]:
    server = start_api(JOBQ_MAX_BODY_BYTES="2048")
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        yield http


def test_body_over_the_limit_is_413(small_body_api: httpx.Client) -> None:
    big = welcome("big", name="x" * 150) | {"payload": {"email": "a@b.co",
                                                        "name": "A", "message": "x" * 4000}}
    assert_error(small_body_api.post("/jobs", json=big), 413, "payload_too_large")

    def chunks(total: int) -> Iterator[bytes]:
        raw = json.dumps(big).encode()[:total]
        for i in range(0, len(raw), 512):
            yield raw[i:i + 512]

    # No Content-Length: the bytes are counted as they stream in.
    chunked = small_body_api.post("/jobs", content=chunks(4000),
                                  headers={"content-type": "application/json"})
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413, "payload_too_large")

    small = json.dumps(welcome("small")).encode()
    accepted = small_body_api.post("/jobs", content=iter([small[:10], small[10:]]),
                                   headers={"content-type": "application/json"})
    assert accepted.status_code == 202, accepted.text


async def test_unknown_things_are_404(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/jobs/0123456789abcdef/status"), 404, "not_found")
    assert_error(await api.get("/jobs/0123456789abcdef"), 404, "not_found")
    assert_error(await api.get("/dlq/email-queue-999"), 404, "not_found")
    assert_error(await api.get("/dlq/not-a-dlq-id"), 404, "not_found")
    assert_error(await api.post("/dlq/email-queue-999/replay"), 404, "not_found")
    assert_error(await api.get("/no/such/route"), 404, "not_found")
    wrong_method = await api.delete("/jobs/abc")
    assert_error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "GET"


async def test_metrics(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json=welcome("m1"))
    await api.post("/jobs", json=welcome("m1"))
    await api.get("/jobs/abcdef/status")
    text = (await api.get("/metrics")).text
    samples = {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples['jobq_api_requests_total{method="POST",route="/jobs",status="202"}'] == 1
    assert samples['jobq_api_requests_total{method="POST",route="/jobs",status="200"}'] == 1
    assert samples[
        'jobq_api_requests_total{method="GET",route="/jobs/{job_id}/status",status="404"}'] == 1
    assert 'jobq_api_request_duration_seconds_count{method="POST",route="/jobs"}' in samples
    assert samples['jobq_jobs_enqueued_total{queue="email-queue",result="created",'
                   'type="welcome-email"}'] == 1
    assert samples['jobq_jobs_enqueued_total{queue="email-queue",result="duplicate",'
                   'type="welcome-email"}'] == 1
    assert samples['jobq_queue_jobs{queue="email-queue",state="waiting"}'] == 1
    assert samples["jobq_api_redis_up"] == 1
    assert "abcdef" not in text  # routes are labelled by template, never by raw path


async def test_openapi_documents_every_route(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    assert set(paths) == {"/jobs", "/jobs/{job_id}/status", "/jobs/{job_id}", "/queues", "/dlq",
                          "/dlq/{dlq_id}", "/dlq/{dlq_id}/replay", "/healthz", "/readyz",
                          "/metrics", "/queues/{queue}/pause", "/queues/{queue}/resume",
                          "/queues/{queue}/jobs", "/queues/{queue}/throughput",
                          "/jobs/{job_id}/cancel", "/dlq/replay", "/workers"}
    create = paths["/jobs"]["post"]["responses"]
    assert set(create) == {"200", "202", "401", "409", "413", "415", "422", "503"}
    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    job_create = doc["components"]["schemas"][body["$ref"].rpartition("/")[2]]
    assert set(job_create["required"]) == {"type", "idempotencyKey", "payload"}
    assert "welcome-email" in job_create["properties"]["type"]["enum"]
    assert "JobOptions" in doc["components"]["schemas"]
    assert create["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "Retry-After" in create["503"]["headers"]
    assert "HTTPValidationError" not in json.dumps(doc)
    for operations in paths.values():
        for operation in operations.values():
            assert operation["description"], operation["operationId"]
