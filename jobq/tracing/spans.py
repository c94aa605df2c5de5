"""The spans jobq emits, named and attributed by the messaging semantic conventions (R25).

* ``send {queue}`` PRODUCER per enqueue (and per replay): its context is the job's creation
  context, stored in the job's carrier.
* A batch: one ``send {queue}`` CLIENT span with ``messaging.batch.message_count``, and one
  ``create {queue}`` PRODUCER span per job (each job's own creation context).
* ``process {queue}`` CONSUMER per attempt: linked to the creation context (``link``, the
  default), parented by it (``child``), or neither (``none``); ``jobq.outcome`` says how the
  attempt ended, ``error.type`` why it failed. The payload is never recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from jobq.tracing import carrier, quiet

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from jobq.scripts import BatchJob, Claimed

SYSTEM = "jobq"
# How an attempt ended (jobq.outcome).
COMPLETED, RETRY, DLQ, CANCELLED = "completed", "retry", "dlq", "cancelled"
LEASE_LOST, TIMEOUT, HANDED_BACK, UNRECORDED = "lease_lost", "timeout", "handed_back", "unrecorded"
FAILED_OUTCOMES = frozenset({RETRY, DLQ, TIMEOUT, UNRECORDED})


def _base(operation: str, kind: str, queue: str) -> dict[str, Any]:
    return {"messaging.system": SYSTEM, "messaging.operation.name": operation,
            "messaging.operation.type": kind, "messaging.destination.name": queue}


@contextlib.contextmanager
def send(tracer: Tracer, queue: str, job_id: str, task: str,
         links: list[Link] | None = None) -> Iterator[Span]:
    """The PRODUCER span of one enqueue or replay; current within the block, so the carrier
    injected there names it."""
    attributes = _base("send", "send", queue)
    attributes["messaging.message.id"] = job_id
    attributes["jobq.task"] = task
    with tracer.start_as_current_span(f"send {queue}", kind=SpanKind.PRODUCER,
                                      attributes=attributes, links=links) as span:
        try:
            yield span
        except Exception as exc:  # refused (conflict, Redis away): say why
            span.set_attribute("error.type", type(exc).__name__)
            raise


@contextlib.contextmanager
def send_batch(tracer: Tracer, count: int) -> Iterator[Span]:
    """The CLIENT span of one ``enqueue_many``; named for its queue once known (``named``)."""
    attributes = _base("send", "send", "")
    del attributes["messaging.destination.name"]
    attributes["messaging.batch.message_count"] = count
    with tracer.start_as_current_span("send", kind=SpanKind.CLIENT,
                                      attributes=attributes) as span:
        yield span


def named(span: Span, queues: set[str]) -> None:
    """Name a batch's send span after its queue when it has one."""
    if len(queues) == 1:
        (queue,) = queues
        span.update_name(f"send {queue}")
        span.set_attribute("messaging.destination.name", queue)


def create(tracer: Tracer, job: BatchJob) -> BatchJob:
    """A batch job with its own ``create {queue}`` PRODUCER span as its creation context."""
    attributes = _base("create", "create", job.job.queue)
    attributes["messaging.message.id"] = job.job_id
    attributes["jobq.task"] = job.job.type
    span = tracer.start_span(f"create {job.job.queue}", kind=SpanKind.PRODUCER,
                             attributes=attributes)
    span.end()
    return carried(job, trace.set_span_in_context(span))


def carried(job: BatchJob, ctx: Context | None = None) -> BatchJob:
    """``job`` carrying the creation context ``ctx`` (default: the current one)."""
    return replace(job, job=replace(job.job, trace_context=carrier.inject(ctx)))


def link_to(raw: str | bytes | None) -> list[Link]:
    """A link to the context of a stored carrier (none when it has none)."""
    sc = carrier.span_context(carrier.extract(raw))
    return [] if sc is None else [Link(sc)]


def duplicate(span: Span, is_duplicate: bool) -> None:
    span.set_attribute("jobq.duplicate", is_duplicate)


class Attempt:
    """The ``process`` span of one attempt, current while the attempt runs."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def ended(self, outcome: str, error_type: str | None = None,
              retry_delay_s: float | None = None) -> None:
        self.span.set_attribute("jobq.outcome", outcome)
        if retry_delay_s is not None and outcome == RETRY:
            self.span.add_event("retry_scheduled", {"jobq.retry.delay_s": retry_delay_s})
        if outcome in FAILED_OUTCOMES or error_type:
            if error_type:
                self.span.set_attribute("error.type", error_type)
            self.span.set_status(Status(StatusCode.ERROR, error_type or outcome))


@contextlib.contextmanager
def attempt(tracer: Tracer, c: Claimed, queue: str, worker: str, raw_carrier: str | None,
            propagation: str) -> Iterator[Attempt]:
    """Run the block as one attempt's CONSUMER span, with the job's Redis calls traced."""
    created = carrier.extract(raw_carrier) if propagation != "none" else None
    attributes = _base("process", "process", queue)
    attributes.update({"messaging.message.id": c.job_id, "messaging.client.id": worker,
                       "jobq.task": c.type, "jobq.attempt": c.attempt,
                       "jobq.max_attempts": c.max_attempts})
    if propagation == "child" and created is not None:
        parent, links = created, None
    else:
        sc = carrier.span_context(created)
        # A fresh root (no ambient span leaks in from the worker's own context).
        parent, links = Context(), None if sc is None else [Link(sc)]
    span = tracer.start_span(f"process {queue}", context=parent, kind=SpanKind.CONSUMER,
                             attributes=attributes, links=links)
    with quiet.loud(), trace.use_span(span, end_on_exit=True, record_exception=False,
                                      set_status_on_exception=False):
        yield Attempt(span)


def error_type(reason: str) -> str | None:
    """The exception class name a failure reason starts with (``"ValueError: ..."``)."""
    head, sep, _ = reason.partition(":")
    return head if sep and head.isidentifier() else None


@contextlib.contextmanager
def root(tracer: Tracer, name: str, attributes: dict[str, Any]) -> Iterator[Span]:
    """A root span (a schedule's or the operator's fire): whatever the caller's context, the
    jobs it creates start a trace of their own."""
    with tracer.start_as_current_span(name, context=Context(), kind=SpanKind.INTERNAL,
                                      attributes=attributes) as span:
        yield span
