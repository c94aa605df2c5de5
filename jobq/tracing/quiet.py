"""Keeping jobq's internal loops out of traces (R25).

Claims, lease renewals, heartbeats, completion batches and the sweeper are jobq's plumbing:
they start no span, and their Redis calls run with instrumentation suppressed (the flag
``opentelemetry-instrumentation-redis`` >= 0.60b0 honours), so an idle worker emits nothing.
A job's own attempt turns it back on (``loud``): its Redis calls belong to its trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

try:
    from opentelemetry import context as _context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
except ImportError:  # tracing not installed: nothing to suppress
    _context = None  # type: ignore[assignment]

# The plain-string key opentelemetry-instrumentation's suppress_instrumentation() also sets
# (older instrumentations read it).
_PLAIN_KEY = "suppress_instrumentation"


def suppress() -> None:
    """Suppress instrumentation for the rest of the calling task or thread (and the tasks it
    creates): called once at the top of each internal loop."""
    if _context is None:
        return
    ctx = _context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True)
    _context.attach(_context.set_value(_PLAIN_KEY, True, ctx))


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Instrumentation suppressed within the block only (start-up calls made from a caller's
    context, e.g. loading the scripts)."""
    yield from _flagged(True)


@contextlib.contextmanager
def loud() -> Iterator[None]:
    """Instrumentation back on within the block (a job's attempt)."""
    yield from _flagged(False)


def _flagged(suppressed: bool) -> Iterator[None]:
    if _context is None:
        yield
        return
    ctx = _context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, suppressed)
    token = _context.attach(_context.set_value(_PLAIN_KEY, suppressed, ctx))
    try:
        yield
    finally:
        _context.detach(token)
