"""``trace_id`` and ``span_id`` on log lines written while a span is current (R25), so a job's
log lines and its trace join. jobq's own log set-up adds this processor when opentelemetry is
installed; an application that configures structlog itself can add it too."""

from __future__ import annotations

from structlog.typing import EventDict, WrappedLogger

from jobq.tracing import seam

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - only added when installed
    _trace = None  # type: ignore[assignment]


def add_trace_ids(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: the current span's ids, W3C-formatted (hex), when there is one."""
    if _trace is None or not seam.active():  # no tracing configured: no span to name
        return event_dict
    ctx = _trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict
