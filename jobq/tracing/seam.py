"""The seam the rest of jobq calls: ``None`` or a cheap check when tracing is off (R25).

OpenTelemetry is optional (``jobq[otel]``). Every call site asks ``tracing_for(provider)`` once,
at construction, and then ``tracing.tracer()`` per operation: ``None`` when opentelemetry is not
installed (``tracing_for`` returns ``None``) or when no tracer provider was given and none is set
globally. Only then does anything else of this package run, so a process without tracing pays
one attribute test (or one function call) per job.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import trace as _trace
except ImportError:  # the `otel` extra is not installed: tracing is off
    _trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

INSTALLED = _trace is not None
_UNKNOWN = object()
_explicit = False  # a provider was passed to some component of this process


def _global_provider() -> Any:
    """The global provider once one is set, else None: the module attribute the API keeps it
    in, read directly, because ``get_tracer_provider()`` consults ``os.environ`` on every call
    (microseconds per job); the public call where that attribute is gone."""
    provider = getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:
        provider = _trace.get_tracer_provider()
        return None if isinstance(provider, _trace.ProxyTracerProvider) else provider
    return provider


def active() -> bool:
    """Whether any span of jobq's can be recorded in this process now (log lines ask)."""
    return _explicit or (INSTALLED and _global_provider() is not None)


if INSTALLED and os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):
    _trace.get_tracer_provider()  # a provider named by the environment: loaded once, now
SCOPE = "jobq"  # the instrumentation scope name spans carry
PROPAGATION_MODES = ("link", "child", "none")


def _version() -> str:
    try:
        return version("jobq")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


class Tracing:
    """A tracer from an explicit provider, or from the global one once it is set."""

    __slots__ = ("_given", "_seen", "_tracer")

    def __init__(self, provider: TracerProvider | None) -> None:
        global _explicit
        _explicit = _explicit or provider is not None
        self._given = provider
        self._seen: Any = None  # the global provider the cached tracer came from
        self._tracer: Tracer | None = (
            provider.get_tracer(SCOPE, _version()) if provider is not None else None)

    def tracer(self) -> Tracer | None:
        """The tracer to use now, or None when tracing is off."""
        if self._given is not None:
            return self._tracer
        provider = _global_provider()
        if provider is None:
            return None  # no provider set: off (spans would go nowhere)
        if provider is not self._seen:
            self._seen, self._tracer = provider, provider.get_tracer(SCOPE, _version())
        return self._tracer

    @property
    def provider(self) -> Any:
        """The provider spans go to (for flushing), or None."""
        if self._given is not None:
            return self._given
        return None if self.tracer() is None else self._seen


def tracing_for(provider: TracerProvider | None = None) -> Tracing | None:
    """The seam for one component: None when opentelemetry is not installed."""
    if not INSTALLED:
        return None
    return Tracing(provider)


def check_propagation(mode: str) -> str:
    """A propagation mode, checked: how a process span relates to its job's creation context."""
    if mode not in PROPAGATION_MODES:
        from jobq.errors import ConfigError

        raise ConfigError(f"trace propagation must be one of {', '.join(PROPAGATION_MODES)}, "
                          f"not {mode!r}")
    return mode
