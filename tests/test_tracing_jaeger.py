"""Tracing (R25) end to end against a real Jaeger: real ``jobq api`` and ``jobq worker``
processes export over OTLP (SDK, batch processor, HTTP/protobuf), and the traces are read back
from Jaeger's query API: a request's job through three linked attempts (their log lines carry
the attempts' ids), then a batch whose worker is sent SIGTERM mid-batch, every finished
attempt's span still arriving."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import ApiServer
from fixtures import Proc, events, eventually, process_env
from jaeger_kit import Jaeger, running_jaeger
from tracing_kit import PROCESS, QUEUE, SEND, with_trace_tasks

from jobq.client import Client
from jobq.connection import Redis
from jobq.settings import Settings
from jobq.tasks import load_registry

pytestmark = pytest.mark.any_server

NAPS = 30  # jobs of the batch; the worker is stopped once a few have finished
NAP_S = 0.15


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


async def spans_of(jaeger: Jaeger, trace_id: str, enough: Callable[[list[dict[str, Any]]], bool],
                   what: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]] | None:
        spans = await asyncio.to_thread(jaeger.trace, trace_id)
        return spans if spans and enough(spans) else None

    return await eventually(read, timeout=20, what=what)


async def test_request_trace_in_jaeger_and_spans_flushed_on_sigterm(
    settings: Settings, spawn: Callable[..., Proc], redis: Redis, tmp_path: Path,
) -> None:
    tsettings = with_trace_tasks(settings)
    client = Client(redis, load_registry(tsettings.tasks), tsettings)
    with running_jaeger(tmp_path) as jaeger:
        from api_fixtures import wait_healthy

        from jobq.embedded import free_port

        port = free_port()
        api_proc = spawn(["api", "--port", str(port)], process_env(
            tsettings, **jaeger.otel_env("jobq-api", 100)), name="api")
        api = ApiServer(f"http://127.0.0.1:{port}", api_proc)
        wait_healthy(api.url, api_proc)
        # A long export delay: the worker's spans reach Jaeger only when it flushes them,
        # at the latest on SIGTERM.
        worker = spawn(["worker", "--metrics-port", "0", "--queue", f"{QUEUE}:3"],
                       process_env(tsettings, **jaeger.otel_env("jobq-worker", 30_000)),
                       name="worker")

        # 1. A request's job, failing twice: three attempts linked to one creation context.
        header, request_trace, request_span = traceparent()
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            answer = await http.post("/jobs", headers={"traceparent": header}, json={
                "type": "trace-flaky", "idempotencyKey": "flaky", "payload": {}})
            assert answer.status_code == 202, answer.text
            flaky = answer.json()["jobId"]
            await eventually(lambda: _state(client, flaky, "completed"), what="flaky to complete")

            # 2. A batch (child mode per task: one trace), and SIGTERM once a few finished.
            header2, batch_trace, _ = traceparent()
            answer = await http.post("/jobs/batch", headers={"traceparent": header2}, json={
                "jobs": [{"type": "trace-nap", "idempotencyKey": f"nap-{i}",
                          "payload": {"seconds": NAP_S, "n": i}} for i in range(NAPS)]})
            assert answer.status_code == 200 and answer.json()["created"] == NAPS, answer.text
            naps = [item["jobId"] for item in answer.json()["items"]]

        async def some_done() -> bool:
            return sum([await _state(client, j, "completed") for j in naps]) >= 6

        await eventually(some_done, what="a few naps to finish")
        worker.terminate()
        assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
        done = {j for j in naps if await _state(client, j, "completed")}
        assert 6 <= len(done) < NAPS, "the worker was to stop mid-batch"

        # The request's trace: the API's send span, under the caller's span (through FastAPI's
        # own server span when FastAPI traces too).
        sent = await spans_of(jaeger, request_trace, lambda s: any(x["name"] == SEND for x in s),
                              "the send span in Jaeger")
        (send,) = [s for s in sent if s["name"] == SEND]
        assert send["service"] == "jobq-api"
        by_id, top = {s["spanId"]: s for s in sent}, send
        while top["parentSpanId"] in by_id:
            top = by_id[top["parentSpanId"]]
        assert top["parentSpanId"] == request_span, sent
        assert send["attributes"]["messaging.message.id"] == flaky
        # Each attempt: its own trace, linked to the send span; the worker's log lines of the
        # attempt carry that trace's ids.
        started = [e for e in events(worker, "job.started") if e["jobId"] == flaky]
        assert [e["attempt"] for e in started] == [1, 2, 3]
        outcomes = []
        for line in started:
            (process,) = await spans_of(jaeger, line["trace_id"], lambda s: True,
                                        f"attempt {line['attempt']} in Jaeger")
            assert process["name"] == PROCESS and process["service"] == "jobq-worker"
            assert process["spanId"] == line["span_id"]
            assert process["links"] == [{"traceId": request_trace, "spanId": send["spanId"]}]
            assert process["attributes"]["jobq.attempt"] == line["attempt"]
            outcomes.append(process["attributes"]["jobq.outcome"])
        assert outcomes == ["retry", "retry", "completed"]

        # The batch's trace: every attempt that finished before the worker stopped is there.
        def complete(spans: list[dict[str, Any]]) -> bool:
            return len(_finished(spans)) >= len(done)

        batch = await spans_of(jaeger, batch_trace, complete, "the batch's finished attempts")
        assert _finished(batch) == done
        assert len([s for s in batch if s["name"] == f"create {QUEUE}"]) == NAPS


def _finished(spans: list[dict[str, Any]]) -> set[str]:
    return {s["attributes"]["messaging.message.id"] for s in spans
            if s["name"] == PROCESS and s["attributes"].get("jobq.outcome") == "completed"}


async def _state(client: Client, job_id: str, state: str) -> bool:
    return (await client.get_job(job_id)).state == state
