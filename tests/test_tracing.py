"""Tracing (R25) with the SDK's in-memory exporter: the span tree of a request through every
attempt of its job, a batch, a replay, a repeated key with another traceparent, a malformed
header, and an idle worker that emits nothing. Every provider is passed explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from api_fixtures import IN_PROCESS_URL as URL
from fixtures import command_stats, eventually, reset_command_stats
from inprocess import in_process_worker
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind
from tracing_kit import PROCESS, QUEUE, SEND, Traced, attrs, render, trace_id, traced
from tracing_kit import with_trace_tasks as _with_trace_tasks

from jobq.api import create_app
from jobq.client import Client
from jobq.connection import Redis
from jobq.settings import Settings
from jobq.tasks import Registry, load_registry

pytestmark = pytest.mark.any_server



@pytest.fixture
def tsettings(settings: Settings) -> Settings:
    return _with_trace_tasks(settings)


@pytest.fixture
def treg(tsettings: Settings) -> Registry:
    return load_registry(tsettings.tasks)


@pytest.fixture
def t() -> Traced:
    return traced()


@asynccontextmanager
async def http_api(settings: Settings, registry: Registry, t: Traced
                   ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, registry, tracer_provider=t.provider)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=URL, timeout=10.0) as http:
        yield http


def request_headers(t: Traced, name: str = "request") -> tuple[dict[str, str], Any]:
    """W3C headers of a span standing for the caller's request (ended at once): the API must
    take the trace from the headers alone, so this span is never current here."""
    span = t.provider.get_tracer("test").start_span(name, kind=SpanKind.CLIENT)
    span.end()
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return headers, span


def job_body(task: str, key: str, n: int = 0) -> dict[str, Any]:
    return {"type": task, "idempotencyKey": key, "payload": {"n": n}}


async def carrier_of(redis: Redis, client: Client, job_id: str) -> dict[str, str]:
    raw = await redis.hget(client.keys(QUEUE).job(job_id), "tc")
    assert raw, f"job {job_id} has no trace carrier"
    carrier: dict[str, str] = orjson.loads(raw)
    return carrier


def span_id_of(carrier: dict[str, str]) -> str:
    return carrier["traceparent"].split("-")[2]


async def test_request_to_three_attempts_links_one_creation_context(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    headers, request = request_headers(t)
    async with http_api(tsettings, treg, t) as http:
        answer = await http.post("/jobs", json=job_body("trace-flaky", "flaky-1"),
                                 headers=headers)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["jobId"]
    async with in_process_worker(tsettings, treg, QUEUE, 2, tracer_provider=t.provider):
        await eventually(lambda: _async(len(t.spans(PROCESS)) == 3),
                         what="three process spans")
    assert render(t.spans()) == [
        "request",
        f"  {SEND}",
        f"{PROCESS} [retry] ~> {SEND}",
        f"{PROCESS} [retry] ~> {SEND}",
        f"{PROCESS} [completed] ~> {SEND}",
    ]
    (send,) = t.spans(SEND)
    assert trace_id(send) == trace_id(request)
    assert send.kind is SpanKind.PRODUCER
    assert attrs(send) == {
        "messaging.system": "jobq", "messaging.operation.name": "send",
        "messaging.operation.type": "send", "messaging.destination.name": QUEUE,
        "messaging.message.id": job_id, "jobq.task": "trace-flaky", "jobq.duplicate": False}
    processes = sorted(t.spans(PROCESS), key=lambda s: attrs(s)["jobq.attempt"])
    assert [attrs(s)["jobq.attempt"] for s in processes] == [1, 2, 3]
    for span in processes:  # one creation context, one trace per attempt (link mode)
        assert span.kind is SpanKind.CONSUMER
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
        assert span.parent is None and trace_id(span) != trace_id(send)
        a = attrs(span)
        assert a["messaging.message.id"] == job_id and a["jobq.max_attempts"] == 3
        assert a["messaging.client.id"] == "w1" and a["messaging.destination.name"] == QUEUE
        assert "payload" not in str(a) and '"n"' not in str(a)  # never the payload
    assert [attrs(s).get("error.type") for s in processes] == ["ValueError", "ValueError", None]
    # The stored carrier is the send span's context.
    client = Client(redis, treg, tsettings)
    assert span_id_of(await carrier_of(redis, client, job_id)) == f"{send.context.span_id:016x}"


async def test_child_mode_parents_the_attempt_on_the_creation_context(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    client = Client(redis, treg, tsettings, tracer_provider=t.provider)
    with t.provider.get_tracer("test").start_as_current_span("caller"):
        result = await client.enqueue("trace-child", "child-1", {})
    async with in_process_worker(tsettings, treg, QUEUE, 1, tracer_provider=t.provider):
        await eventually(lambda: _async(bool(t.spans(PROCESS))), what="the process span")
    assert render(t.spans()) == ["caller", f"  {SEND}", f"    {PROCESS} [completed]"]
    assert attrs(t.spans(PROCESS)[0])["messaging.message.id"] == result.job_id


async def test_batch_is_one_send_and_a_create_per_job(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    headers, request = request_headers(t)
    async with http_api(tsettings, treg, t) as http:
        answer = await http.post("/jobs/batch", headers=headers, json={
            "jobs": [job_body("trace-child", f"b{i}", i) for i in range(100)]})
        assert answer.status_code == 200 and answer.json()["created"] == 100, answer.text
    (send,) = t.spans(SEND)
    assert send.kind is SpanKind.CLIENT
    assert attrs(send)["messaging.batch.message_count"] == 100
    assert send.parent is not None and send.parent.span_id == request.context.span_id
    creates = t.spans(f"create {QUEUE}")
    assert len(creates) == 100 and len(t.spans()) == 102
    assert all(c.kind is SpanKind.PRODUCER and c.parent is not None
               and c.parent.span_id == send.context.span_id for c in creates)
    # Each job carries its own create span's context.
    client = Client(redis, treg, tsettings)
    ids = [item["jobId"] for item in answer.json()["items"]]
    by_job = {attrs(c)["messaging.message.id"]: f"{c.context.span_id:016x}" for c in creates}
    for job_id in ids:
        assert span_id_of(await carrier_of(redis, client, job_id)) == by_job[job_id]


async def test_replay_links_to_the_original_job(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    client = Client(redis, treg, tsettings, tracer_provider=t.provider)
    first = await client.enqueue("trace-doomed", "doomed-1", {})
    async with in_process_worker(tsettings, treg, QUEUE, 1, tracer_provider=t.provider):
        await eventually(lambda: _async(len(t.spans(PROCESS)) == 1), what="the first attempt")
        page = await client.list_dlq(QUEUE)
        (entry,) = page.items
        replayed = await client.replay(entry.dlqId)
        await eventually(lambda: _async(len(t.spans(PROCESS)) == 2), what="the replay's attempt")
    original_send, replay_send = sorted(t.spans(SEND), key=lambda s: s.start_time or 0)
    assert attrs(original_send)["messaging.message.id"] == first.job_id
    assert attrs(replay_send)["messaging.message.id"] == replayed.job_id
    assert attrs(replay_send)["jobq.replayed_from"] == first.job_id
    assert [link.context.span_id for link in replay_send.links] == [
        original_send.context.span_id]
    assert render(t.spans()) == [
        SEND,
        f"{PROCESS} [dlq] ~> {SEND}",
        f"{SEND} ~> {SEND}",
        f"{PROCESS} [dlq] ~> {SEND}",
    ]
    last = max(t.spans(PROCESS), key=lambda s: s.start_time or 0)
    assert [link.context.span_id for link in last.links] == [replay_send.context.span_id]


async def test_a_replay_links_to_the_original_after_its_record_is_gone(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    """The DLQ entry outlives the failed job's record (R12): the entry keeps the carrier."""
    client = Client(redis, treg, tsettings, tracer_provider=t.provider)
    first = await client.enqueue("trace-doomed", "doomed-gone", {})
    async with in_process_worker(tsettings, treg, QUEUE, 1, tracer_provider=t.provider):
        await eventually(lambda: _async(len(t.spans(PROCESS)) == 1), what="the attempt")
        (entry,) = (await client.list_dlq(QUEUE)).items
    assert await redis.delete(client.keys(QUEUE).job(first.job_id)) == 1  # as trimming does
    await client.replay(entry.dlqId)
    original_send, replay_send = sorted(t.spans(SEND), key=lambda s: s.start_time or 0)
    assert attrs(original_send)["messaging.message.id"] == first.job_id
    assert [link.context.span_id for link in replay_send.links] == [
        original_send.context.span_id]


async def test_same_key_with_another_traceparent_is_the_same_job(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    one, first_request = request_headers(t, "first")
    two, _ = request_headers(t, "second")
    assert one["traceparent"] != two["traceparent"]
    async with http_api(tsettings, treg, t) as http:
        created = await http.post("/jobs", json=job_body("trace-child", "same"), headers=one)
        again = await http.post("/jobs", json=job_body("trace-child", "same"), headers=two)
    assert created.status_code == 202, created.text
    assert again.status_code == 200, again.text  # a duplicate, never a 409
    assert again.json() == {"status": "accepted", "jobId": created.json()["jobId"],
                            "duplicate": True}
    # The job keeps the context it was created with (a given context is never overwritten).
    client = Client(redis, treg, tsettings)
    carrier = await carrier_of(redis, client, created.json()["jobId"])
    assert carrier["traceparent"].split("-")[1] == trace_id(first_request)
    assert [attrs(s)["jobq.duplicate"] for s in t.spans(SEND)] == [False, True]


async def test_malformed_traceparent_is_ignored(
    tsettings: Settings, treg: Registry, t: Traced,
) -> None:
    async with http_api(tsettings, treg, t) as http:
        answer = await http.post("/jobs", json=job_body("trace-child", "bad"),
                                 headers={"traceparent": "00-not-a-trace-id-zz"})
    assert answer.status_code == 202, answer.text
    (send,) = t.spans(SEND)
    assert send.parent is None  # a new trace, not an error


async def test_idle_worker_emits_no_span(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    """Claims, blocking waits, stall sweeps, heartbeats and renewals make no span, and their
    Redis calls stay out of traces even with the Redis instrumentation on."""
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=t.provider)
    try:
        await redis.ping()  # the instrumentation is live: a call outside the worker is traced
        assert [s.name for s in t.spans()] == ["PING"]
        t.exporter.clear()
        with suppress_instrumentation():
            await reset_command_stats(redis)
        async with in_process_worker(tsettings, treg, QUEUE, 4, renew=True, sweep=True,
                                     tracer_provider=t.provider):
            async def idled() -> bool:  # several claims, blocking waits, sweeps, a heartbeat
                with suppress_instrumentation():  # the test's own reads are not the worker's
                    stats = await command_stats(redis)
                return (stats.get("cmdstat_blmove", {}).get("calls", 0) >= 2
                        and stats.get("cmdstat_evalsha", {}).get("calls", 0) >= 5
                        and stats.get("cmdstat_hset", {}).get("calls", 0) >= 1)

            await eventually(idled, what="the idle worker's loops to turn")
            assert [s.name for s in t.spans()] == []
        assert [s.name for s in t.spans()] == []
    finally:
        instrumentor.uninstrument()


async def _async(value: bool) -> bool:
    return value


async def test_each_schedule_fire_is_a_root_span(
    tsettings: Settings, treg: Registry, t: Traced, redis: Redis,
) -> None:
    from datetime import UTC, datetime

    from jobq.schedule_check import check
    from jobq.schedule_mark import ScheduleMark
    from jobq.scheduler import _fire_once

    client = Client(redis, treg, tsettings, tracer_provider=t.provider)
    spec = check({"name": "tick", "type": "trace-child", "every": "1s", "payload": {}}, treg)
    mark = ScheduleMark(redis, client.keys(QUEUE), spec)
    with t.provider.get_tracer("test").start_as_current_span("ambient"):
        fired = await _fire_once(spec, client, datetime.now(UTC), None, mark)
    assert fired is not None
    assert render(t.spans()) == ["ambient", "fire tick", f"  {SEND}"]
