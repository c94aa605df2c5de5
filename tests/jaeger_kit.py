"""A real Jaeger (v2, all-in-one: OTLP receiver, memory storage, query API) for the tracing
tests (R25): the pinned binary hack/jaeger.sh builds into the cache (hack/test.sh builds it
before the suite; here it is only looked up), on free loopback ports."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobq.embedded import free_port

VERSION = "v1.75.0"  # hack/jaeger.sh's JAEGER_VERSION
START_TIMEOUT_S = 60.0

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
{ui}    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: {otlp_host}:{otlp}
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def jaeger_binary() -> Path:
    cache = Path(os.environ.get("JOBQ_CACHE_DIR") or Path.home() / ".cache" / "jobq")
    binary = cache / f"jaeger-{VERSION}" / "jaeger"
    if not binary.is_file():
        reason = f"no Jaeger at {binary} (bash hack/jaeger.sh builds it)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


@dataclass
class Jaeger:
    otlp_url: str
    query_url: str
    log: Path

    def otel_env(self, service: str, delay_ms: int) -> dict[str, str]:
        """The environment of a jobq process exporting its spans here over OTLP/HTTP, its
        batch processor exporting every ``delay_ms``."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_url,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_SERVICE_NAME": service, "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms)}

    def trace(self, trace_id: str) -> list[dict[str, Any]] | None:
        """The spans of a trace (OTLP JSON, ids as hex, with ``service``), None if unknown."""
        answer = httpx.get(f"{self.query_url}/api/v3/traces/{trace_id}", timeout=5.0)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        spans = []
        for rs in answer.json()["result"]["resourceSpans"]:
            resource = {a["key"]: _value(a["value"])
                        for a in rs.get("resource", {}).get("attributes", [])}
            service = str(resource.get("service.name", ""))
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    spans.append(_normalised(span, service, resource))
        return spans


def _hex(value: str) -> str:
    """OTLP JSON ids are hex; some encoders give base64: hex either way."""
    if value and all(c in "0123456789abcdef" for c in value) and len(value) in (16, 32):
        return value
    return base64.b64decode(value).hex() if value else ""


def _value(v: dict[str, Any]) -> Any:
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in v:
            return v[kind]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def _normalised(span: dict[str, Any], service: str,
                resource: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "service": service, "resource": resource or {}, "name": span["name"],
        "traceId": _hex(span["traceId"]),
        "spanId": _hex(span["spanId"]), "parentSpanId": _hex(span.get("parentSpanId", "")),
        "attributes": {a["key"]: _value(a["value"]) for a in span.get("attributes", [])},
        "links": [{"traceId": _hex(li["traceId"]), "spanId": _hex(li["spanId"])}
                  for li in span.get("links", [])],
    }


@contextmanager
def running_jaeger(tmp_path: Path, ui_assets: Path | None = None,
                   otlp_host: str = "127.0.0.1") -> Iterator[Jaeger]:
    """Jaeger on free loopback ports; with ``ui_assets`` (a built jaeger-ui, as
    hack/jaeger-ui.sh makes) its query port also serves the UI, else a placeholder page.
    ``otlp_host``: where its OTLP receiver listens instead (the node tier's pods reach the
    host at the node's bridge address)."""
    binary = jaeger_binary()
    ports = {"otlp": free_port(), "query": free_port(), "query_grpc": free_port()}
    config = tmp_path / "jaeger.yaml"
    ui = f"    ui:\n      assets_path: {ui_assets}\n" if ui_assets else ""
    config.write_text(CONFIG.format(ui=ui, otlp_host=otlp_host, **ports))
    log = tmp_path / "jaeger.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary), "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    jaeger = Jaeger(f"http://{otlp_host}:{ports['otlp']}", f"http://127.0.0.1:{ports['query']}",
                    log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"jaeger exited:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{jaeger.query_url}/api/v3/services", timeout=1.0).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"jaeger not up:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield jaeger
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
