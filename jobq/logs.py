"""Structured logs through structlog: one JSON object a line (or console lines for people), cheap
enough for the per-job path.

jobq's loggers are structlog loggers (``structlog.get_logger``), so a process that configures
structlog itself routes jobq's lines through its own pipeline. ``configure_logging`` is what jobq's
commands call to set structlog up for jobq's own output, configured for speed:

* ``structlog.make_filtering_bound_logger``: a call below the level is a no-op method;
* processors: the level, a timestamp whose date-and-seconds part is formatted once per second,
  the traceback of ``exception()`` / ``exc_info``, then orjson (``JSONRenderer(serializer=
  orjson.dumps)``) or structlog's ``ConsoleRenderer``;
* ``cache_logger_on_first_use``: a logger is assembled once, not at every call (so one first
  used before ``configure_logging`` keeps the level and format it found; the stream it follows);
* the "logger" structlog hands rendered lines to is a buffer that a background thread writes out
  at most ``FLUSH_INTERVAL_S`` later (errors at once): writing each line to the stream itself
  (structlog's ``BytesLogger``) costs a system call a line, about as much as the rest of the line
  when stdout is a pipe (``bench/logline.py``).
  ``flush()`` writes what is pending; it runs at interpreter exit, and a process leaving through
  ``os._exit`` (the worker) must call it first.

``configure_logging(fmt="structlog")`` (``JOBQ_LOG_FORMAT=structlog``) leaves structlog as the
application configures it: jobq's lines then go wherever the application's own
``structlog.configure`` sends them (call it in the tasks module, which a worker imports after
reading its settings). A process that never calls ``configure_logging`` (an application using
``jobq.client``) gets whatever structlog set-up it has, as with any library that logs through
structlog.

Lines have the fields structlog's JSON renderer gives them: the bound context, the call's own
fields, then ``event``, ``level`` and ``timestamp`` (ISO 8601, UTC, microseconds, ``Z``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from jobq.tracing import seam as tracing_seam

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
FORMATS = ("json", "console", "structlog")
FLUSH_INTERVAL_S = 0.1  # longest a written line waits in the buffer before reaching the stream
MAX_PENDING_LINES = 2000  # past this a writer flushes itself: bounds memory under a log storm

Logger = FilteringBoundLogger
"""What ``get_logger`` returns once configured by jobq: ``bind(**fields)``, ``debug``/``info``/
``warning``/``error``/``exception(event, **fields)``."""


class _Clock:
    """ISO timestamps; the part up to the second is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return "%s.%06dZ" % (self._prefix, micros)  # noqa: UP031 (faster than an f-string)


_clock = _Clock()


def add_timestamp(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: ``timestamp`` as ``TimeStamper(fmt="iso", utc=True)`` writes it,
    always with microseconds, at a fraction of its cost."""
    event_dict["timestamp"] = _clock.now()
    return event_dict


def _console_line(_logger: WrappedLogger, _method: str, text: str) -> bytes:
    return (text + "\n").encode()


class _Sink:
    """Buffered lines for one stream, and the "logger" structlog hands rendered lines to: a
    background thread writes them out every 100 ms, errors at once.

    Writers only append to a deque (atomic, no lock: a line costs a method call); the single
    drainer pops what it finds, so lines appended meanwhile wait for the next flush.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending: deque[bytes] = deque()
        self._drain = threading.Lock()  # one drainer at a time: the thread, flush(), errors
        self._thread: threading.Thread | None = None

    def write(self, line: bytes) -> None:
        self._pending.append(line)
        if len(self._pending) >= MAX_PENDING_LINES:
            self.flush()
        elif self._thread is None:
            self._start()

    def write_now(self, line: bytes) -> None:
        self._pending.append(line)
        self.flush()

    # structlog calls the method named after the level with the rendered line
    debug = info = warning = warn = msg = write
    error = exception = critical = fatal = write_now

    def flush(self) -> None:
        with self._drain:
            pending = self._pending
            lines = [pending.popleft() for _ in range(len(pending))]
            if not lines:
                return
            try:
                self.stream.write(b"".join(lines).decode())
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the stream is gone (closed pipe at exit): nowhere left to write

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobq-logs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            if self._pending:
                self.flush()

    def after_fork_in_child(self) -> None:
        # The flusher thread does not survive fork, its lock may have been held, and the parent
        # writes the lines it had buffered itself.
        self._pending.clear()
        self._drain = threading.Lock()
        self._thread = None


# One sink for the process; configure_logging points it at another stream, so loggers assembled
# before (structlog caches them) write there too.
_sink = _Sink(sys.stdout)


def _sink_factory(*_args: Any) -> _Sink:
    return _sink


def processors(fmt: str = "json", *, colors: bool = False) -> list[Any]:
    """jobq's structlog processors for ``fmt`` ("json" or "console"); the last renders bytes."""
    head: list[Any] = [structlog.processors.add_log_level, add_timestamp]
    if tracing_seam.INSTALLED:  # trace_id/span_id while a span is current (R25)
        from jobq.tracing.logfields import add_trace_ids

        head.append(add_trace_ids)
    if fmt == "console":
        return [*head, structlog.dev.ConsoleRenderer(
                    colors=colors, repr_native_str=True,
                    exception_formatter=structlog.dev.plain_traceback),
                _console_line]
    return [*head, structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps,
                                              option=orjson.OPT_APPEND_NEWLINE)]


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Set this process's level, format and stream; events below ``level`` cost one call.

    ``fmt="structlog"`` leaves structlog's configuration to the application (its own
    ``structlog.configure``, made before or after this call, applies to jobq's lines).
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    flush()
    _sink.stream = stream or sys.stdout
    if fmt != "structlog":
        structlog.configure(
            processors=processors(fmt, colors=fmt == "console" and _sink.stream.isatty()),
            wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
            context_class=dict,
            logger_factory=_sink_factory,
            cache_logger_on_first_use=True,
        )
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> Logger:
    """A structlog logger; ``name`` goes to the logger factory (jobq's lines do not carry it;
    an application's factory, e.g. ``structlog.stdlib.LoggerFactory()``, may)."""
    logger: Logger = structlog.get_logger(name)
    return logger


def flush() -> None:
    """Write every buffered line now: call before ``os._exit`` (atexit covers normal exits)."""
    _sink.flush()


atexit.register(flush)
os.register_at_fork(after_in_child=_sink.after_fork_in_child)

__all__ = ["FORMATS", "LEVELS", "Logger", "add_timestamp", "configure_logging", "flush",
           "get_logger", "processors"]
