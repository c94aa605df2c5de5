"""The HTTP API end to end: the real app (in-process, see api_fixtures), real workers, a real
Redis; a real ``jobq api`` process where the socket matters (a body streamed past the limit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from api_fixtures import ApiServer, assert_error, welcome
from fastapi import APIRouter, FastAPI
from fixtures import Proc, command_stats, eventually, process_env, reset_command_stats
from prometheus_client.exposition import generate_latest
from redis.asyncio import Redis

from jobq.api.metrics import COUNTS_CACHE_S, ApiMetrics, MetricsMiddleware, route_templates
from jobq.settings import Settings


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
                           "createdAt", "processedAt", "finishedAt", "failedReason", "progress"}
    assert (status["jobId"], status["type"], status["queue"]) == (
        job_id, "welcome-email", "email-queue")

    start_worker("email-queue:2")

    async def completed() -> dict[str, Any] | None:
        view = (await api.get(f"/jobs/{job_id}/status")).json()
        return view if view["state"] == "completed" else None

    done = await eventually(completed, timeout=30, what="the job to complete")
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
                                              "completed", "failed", "cancelled", "dlq", "limited",
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
    other_type = await api.post("/jobs", json={"type": "effect-then-hang",
                                               "idempotencyKey": "dup",
                                               "payload": {"seconds": 1}})
    assert_error(other_type, 409, "conflict")  # same queue (email-queue), other type
    other_queue = await api.post("/jobs", json={"type": "flaky", "idempotencyKey": "dup",
                                                "payload": {}})
    assert other_queue.status_code == 202  # idempotency is per queue: another job
    assert other_queue.json()["jobId"] != first.json()["jobId"]


async def test_concurrent_creates_make_one_job(api: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(api.post("/jobs", json=welcome("race")) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert len({a.json()["jobId"] for a in answers}) == 1
    counts = {q["queue"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert counts["email-queue"]["waiting"] == 1


# Refused before any Redis call (the request model and the task's payload model decide): the
# same on every server, so run once (any_server).
@pytest.mark.any_server
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
        # Strict: JSON's types are kept, nothing is coerced into a number or a string.
        ({"type": "flaky", "idempotencyKey": "k", "payload": {},
          "options": {"delaySeconds": False}}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {},
          "options": {"delaySeconds": "5"}}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {}, "options": {"attempts": True}},
         "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {}, "options": {"attempts": "2"}},
         "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {},
          "options": {"backoff": {"type": "fixed", "delaySeconds": True}}}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": 7, "payload": {}}, "validation_error"),
        ({"type": "flaky", "idempotencyKey": "k", "payload": {"failTimes": True}},
         "invalid_payload"),
        ({"type": "generate-report", "idempotencyKey": "k",
          "payload": {"reportId": "r", "rows": "10"}}, "invalid_payload"),
        ({"type": "generate-report", "idempotencyKey": "k",
          "payload": {"reportId": 5}}, "invalid_payload"),
    ],
)
async def test_invalid_requests_are_422(
    api: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    error = assert_error(await api.post("/jobs", json=body), 422, code)
    if code == "invalid_payload":  # the offending field, relative to the payload
        assert any(d["loc"][0] in body["payload"] for d in error["details"]), error
    counts = (await api.get("/queues")).json()["queues"]
    assert all(q["waiting"] == q["delayed"] == 0 for q in counts)  # nothing was stored


@pytest.mark.any_server
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


def smembers_calls(stats: dict[str, dict[str, int]]) -> int:
    """Reads of the known-queues set: one per read of every queue's depths (Client.counts)."""
    return int(stats.get("cmdstat_smembers", {}).get("calls", 0))


async def test_scrapes_within_the_cache_window_share_one_read_of_redis(
    api: httpx.AsyncClient, redis: Redis,
) -> None:
    """Concurrent and repeated scrapes cost Redis one read of every queue per COUNTS_CACHE_S,
    however many come (an unauthenticated scrape loop once cost one read each)."""
    await api.post("/jobs", json=welcome("cached"))
    await reset_command_stats(redis)
    loop = asyncio.get_running_loop()
    started = loop.time()
    scrapes = [*await asyncio.gather(*(api.get("/metrics") for _ in range(5))),
               await api.get("/metrics")]
    elapsed = loop.time() - started
    assert all(s.status_code == 200 for s in scrapes)
    assert all('jobq_queue_jobs{queue="email-queue",state="waiting"} 1.0' in s.text
               for s in scrapes)
    reads = smembers_calls(await command_stats(redis))
    assert reads == 1 or elapsed >= COUNTS_CACHE_S, (reads, elapsed)
    await asyncio.sleep(COUNTS_CACHE_S)  # the window itself is what passes: nothing to await
    await api.post("/jobs", json=welcome("fresh"))
    after = await api.get("/metrics")
    assert 'jobq_queue_jobs{queue="email-queue",state="waiting"} 2.0' in after.text
    assert smembers_calls(await command_stats(redis)) == reads + 1


async def test_an_integral_number_is_an_integer(api: httpx.AsyncClient) -> None:
    """JSON (and JSON Schema) has one kind of number: ``7.0`` is the integer 7, in the
    options and in a payload alike (strict validation alone would refuse it)."""
    created = await api.post("/jobs", json={
        "type": "flaky", "idempotencyKey": "seven", "payload": {"failTimes": 1.0},
        "options": {"attempts": 7.0}})
    assert created.status_code == 202, created.text
    job = (await api.get(f"/jobs/{created.json()['jobId']}")).json()
    assert job["maxAttempts"] == 7
    assert_error(await api.post("/jobs", json={
        "type": "flaky", "idempotencyKey": "half", "payload": {"failTimes": 1.5}}), 422,
        "invalid_payload")


@pytest.mark.any_server
async def test_metrics_label_a_route_by_the_template_it_is_served_under() -> None:
    """Routers are included with ``include_router``, so a prefix given there counts; the
    request metrics must label by the served template (``/v1/...``), not the router's own."""
    app = FastAPI()
    router = APIRouter()

    @router.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> dict[str, str]:
        return {"jobId": job_id}

    app.include_router(router, prefix="/v1")
    metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=lambda: route_templates(app))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://jobq.test") as http:
        assert (await http.get("/v1/jobs/abc")).json() == {"jobId": "abc"}
        assert (await http.get("/jobs/abc")).status_code == 404
    text = generate_latest(metrics.registry).decode()
    assert 'jobq_api_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}' in text
    assert 'route="<unmatched>",status="404"' in text
