"""The README's picture of a trace in Jaeger's UI (R25), taken from a real run: a real Jaeger
serving the real jaeger-ui build, real ``jobq api`` and ``jobq worker`` processes exporting over
OTLP, a caller's request whose job fails once and then succeeds, and Debian's chromium driven by
Playwright opening the trace. Not a test of the suite (the name does not match ``test_*.py``, so
``make test`` never collects it): ``bash hack/trace-picture.sh`` builds what it needs and runs
it, writing ``$JOBQ_TRACE_PICTURE`` (docs/trace-in-jaeger.png)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import ApiServer
from fixtures import Proc, eventually, metrics_port
from jaeger_kit import Jaeger, running_jaeger
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, format_trace_id

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
QUEUE = "report-queue"  # the demo task "flaky" runs there
SEND, PROCESS = f"send {QUEUE}", f"process {QUEUE}"
WAIT_MS = 30_000

pytestmark = [pytest.mark.any_server, pytest.mark.timeout(240)]


def _required_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run bash hack/trace-picture.sh", pytrace=False)
    return Path(value)


async def test_trace_picture(
    start_api: Callable[..., ApiServer], start_worker: Callable[..., Proc], tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright, expect

    ui_assets = _required_path("JOBQ_JAEGER_UI")
    picture = _required_path("JOBQ_TRACE_PICTURE")
    with running_jaeger(tmp_path, ui_assets=ui_assets) as jaeger:
        api = start_api(**jaeger.otel_env("jobq-api", 100))
        # Attempts as children of the request's trace, so one trace shows all of them (the
        # default, links, gives each attempt a trace of its own).
        worker = start_worker(f"{QUEUE}:2", JOBQ_TRACE_PROPAGATION="child",
                              **jaeger.otel_env("jobq-worker", 100))
        await metrics_port(worker)  # started: the timeline shows no start-up wait
        trace_id = await _request(api, jaeger)
        try:
            spans = await eventually(lambda: _whole_trace(jaeger, trace_id), timeout=30,
                                     what="the request, the enqueue and both attempts in Jaeger")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Jaeger has: {jaeger.trace(trace_id)}") from None
        outcomes = sorted(s["attributes"].get("jobq.outcome", "") for s in spans
                          if s["name"] == PROCESS)
        assert outcomes == ["completed", "retry"], spans

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                               args=ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{jaeger.query_url}/trace/{trace_id}")
            rows = page.locator(".span-row")
            await expect(rows).to_have_count(len(spans), timeout=WAIT_MS)
            # The failed attempt (the one row with the UI's error mark) opened: its tags
            # (jobq.outcome=retry, error.type) and its retry_scheduled event.
            failed = page.locator(".span-name", has_text=PROCESS,
                                  has=page.locator(".SpanBarRow--errorIcon"))
            await expect(failed).to_have_count(1, timeout=WAIT_MS)
            await failed.click()
            await expect(page.locator(".detail-row")).to_contain_text("retry", timeout=WAIT_MS)
            picture.parent.mkdir(parents=True, exist_ok=True)
            last = await rows.last.bounding_box()
            assert last is not None
            await page.screenshot(path=str(picture), clip={
                "x": 0, "y": 0, "width": 1280, "height": last["y"] + last["height"] + 8})
            await browser.close()


async def _request(api: ApiServer, jaeger: Jaeger) -> str:
    """A caller's request (service "shop", its own SDK) that creates a job failing once:
    the trace id its span starts."""
    provider = TracerProvider(resource=Resource({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{jaeger.otlp_url}/v1/traces")))
    tracer = provider.get_tracer("trace-picture")
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            with tracer.start_as_current_span("POST /jobs", kind=SpanKind.CLIENT, attributes={
                    "http.request.method": "POST", "url.full": f"{api.url}/jobs"}) as span:
                headers: dict[str, str] = {}
                inject(headers)
                answer = await http.post("/jobs", headers=headers, json={
                    "type": "flaky", "idempotencyKey": "trace-picture",
                    "payload": {"failTimes": 1, "sleepSeconds": 0.2}})
                span.set_attribute("http.response.status_code", answer.status_code)
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["jobId"]

            async def completed() -> bool:
                return (await http.get(f"/jobs/{job_id}")).json()["state"] == "completed"

            await eventually(completed, timeout=30, what="the job to complete")
        return format_trace_id(span.get_span_context().trace_id)
    finally:
        provider.shutdown()


async def _whole_trace(jaeger: Jaeger, trace_id: str) -> list[dict[str, Any]] | None:
    """The trace once it holds the caller's span, the send span and both attempts (the API's
    spans of FastAPI's own tracing, sent with the send span, come along)."""
    spans = await asyncio.to_thread(jaeger.trace, trace_id) or []
    names = [(s["service"], s["name"]) for s in spans]
    whole = (("shop", "POST /jobs") in names and ("jobq-api", SEND) in names
             and names.count(("jobq-worker", PROCESS)) == 2)
    return spans if whole else None
