"""A tracer provider for jobq's own commands, from the standard ``OTEL_*`` variables (R25).

``jobq api``, ``jobq worker``, ``jobq scheduler`` and ``jobq operator`` export spans when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and the
OpenTelemetry SDK and OTLP exporter are installed (the image has both). Everything else follows
the SDK's own variables: ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or
``grpc``), ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``
and ``OTEL_BSP_*`` for the batch processor. ``OTEL_SDK_DISABLED=true`` turns it off.
"""

from __future__ import annotations

import os
from typing import Any

from jobq.logs import get_logger

log = get_logger("jobq.tracing")

FLUSH_S = 3.0  # longest a stopping process waits for its last spans to be exported


def _wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(os.environ.get(name) for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def provider_from_env(service_name: str) -> Any:
    """An SDK tracer provider exporting OTLP with a batch processor, made global for this
    process (so the application's own instrumentations join it); None when not configured or
    the SDK is missing (logged once: the process runs untraced)."""
    if not _wanted():
        return None
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        log.warning("tracing.unavailable", error=str(exc),
                    hint="pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http")
        return None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing.enabled", service=resource.attributes.get("service.name"),
             protocol=protocol)
    return provider


def flush(provider: Any, timeout_s: float = FLUSH_S) -> bool:
    """Export the spans still buffered (a stopping worker: no finished attempt's span lost),
    within ``timeout_s``; True when everything went out. Also for providers given by the
    application: any provider with ``force_flush``."""
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is None:
        return True
    try:
        done = bool(force_flush(int(timeout_s * 1000)))
    except Exception as exc:  # an exporter's failure must not fail the shutdown
        log.warning("tracing.flush_failed", error=repr(exc))
        return False
    if not done:
        log.warning("tracing.flush_incomplete", timeoutS=timeout_s)
    return done


def shutdown(provider: Any) -> None:
    """Flush and stop a provider this process made (``provider_from_env``)."""
    if provider is None:
        return
    flush(provider)
    try:
        provider.shutdown()
    except Exception as exc:
        log.warning("tracing.shutdown_failed", error=repr(exc))
