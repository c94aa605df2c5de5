"""OpenTelemetry tracing for jobq (R25): optional, and free when off.

Only ``seam`` and ``quiet`` may be imported without opentelemetry installed; the rest is
imported by the call sites once ``tracing_for(...).tracer()`` gave a tracer.
"""

from jobq.tracing.logfields import add_trace_ids
from jobq.tracing.seam import INSTALLED, PROPAGATION_MODES, Tracing, check_propagation, tracing_for

__all__ = ["INSTALLED", "PROPAGATION_MODES", "Tracing", "add_trace_ids", "check_propagation",
           "tracing_for"]
