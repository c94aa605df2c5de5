"""Helpers of the tracing tests (R25): an SDK provider with an in-memory exporter (passed
explicitly: no test touches the global provider) and a rendered span tree to assert on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tracetasks
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id

from jobq.settings import Settings


@dataclass
class Traced:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = self.exporter.get_finished_spans()
        return [s for s in found if name is None or s.name == name]


def traced() -> Traced:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Traced(provider, exporter)


def with_trace_tasks(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "tracetasks"]})


def _label(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    outcome = attrs.get("jobq.outcome")
    return span.name + (f" [{outcome}]" if outcome else "")


def render(spans: Sequence[ReadableSpan]) -> list[str]:
    """One line per span, children indented under their parent, roots in start order; a link
    shows as ``~> <linked span>`` (``~> remote`` when that span is not among ``spans``)."""
    by_id = {s.context.span_id: s for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(s)
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        links = [_label(by_id[link.context.span_id]) if link.context.span_id in by_id
                 else "remote" for link in span.links]
        lines.append("  " * depth + _label(span) + "".join(f" ~> {x}" for x in links))
        for child in sorted(children.get(span.context.span_id, []), key=_start):
            walk(child, depth + 1)

    for root in sorted(children.get(None, []), key=_start):
        walk(root, 0)
    return lines


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


def trace_id(span: ReadableSpan) -> str:
    return format_trace_id(span.context.trace_id)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


QUEUE = tracetasks.QUEUE
SEND = f"send {QUEUE}"
PROCESS = f"process {QUEUE}"
