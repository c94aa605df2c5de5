"""The carrier: a job's creation context, stored on its record as field ``tc`` (R25).

``tc`` holds what the *global* propagator injects (W3C ``traceparent``/``tracestate`` by
default, or whatever the application configured, e.g. B3), as a small JSON object. It sits
outside the payload and outside the idempotency fingerprint, so the same key sent again with
another ``traceparent`` is still the same job. Anything unreadable is ignored, never an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context

FIELD = "tc"  # the job hash field (lua/lib/new_job.lua writes it)
MAX_CHARS = 2048  # a carrier larger than this (huge baggage) is not stored


def inject(ctx: Context | None = None) -> str:
    """The carrier of ``ctx`` (default: the current context) as stored on a job; "" for none."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    if not carrier:
        return ""
    text = orjson.dumps(carrier).decode()
    return text if len(text) <= MAX_CHARS else ""


def extract(raw: str | bytes | None) -> Context | None:
    """The context a stored carrier names, or None when there is none or it is unreadable."""
    if not raw:
        return None
    try:
        carrier = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(carrier, dict):
        return None
    return from_headers({str(k): str(v) for k, v in carrier.items()})


def from_headers(headers: Mapping[str, Any]) -> Context | None:
    """The remote context of request headers (W3C by default), or None: a malformed or
    missing ``traceparent`` is ignored."""
    ctx = propagate.extract(headers, context=Context())
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


def span_context(ctx: Context | None) -> trace.SpanContext | None:
    """The span context a carrier's context holds (what links point at)."""
    if ctx is None:
        return None
    sc = trace.get_current_span(ctx).get_span_context()
    return sc if sc.is_valid else None


@contextlib.contextmanager
def remote_parent(headers: Mapping[str, Any]) -> Iterator[None]:
    """Within the block the request's remote context (its W3C headers) is current, unless a
    span is current already (an instrumented server's span, which holds it anyway)."""
    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    ctx = from_headers(headers)
    if ctx is None:  # none, or malformed: ignored
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)
