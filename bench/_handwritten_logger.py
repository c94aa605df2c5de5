"""jobq's hand-written logger as it was before jobq.logs moved to structlog (jobq@d0f8ead), kept
only for bench/logline.py's comparison; nothing else imports it.

Structured logs: one JSON object a line (or console lines for people), cheap enough for the
per-job path.

Every job writes lifecycle lines, so a line must cost a few microseconds: fields are rendered by
orjson, the date-and-seconds part of the timestamp is formatted once per second, and lines go to a
buffer that a background thread writes out at most ``FLUSH_INTERVAL_S`` later (errors at once).
``flush()`` writes what is pending; it runs at interpreter exit, and a process leaving through
``os._exit`` (the worker) must call it first.

Lines have the fields structlog's JSON renderer gave them: the bound context, the call's own
fields, then ``event``, ``level`` and ``timestamp`` (ISO 8601, UTC, microseconds, ``Z``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any, TextIO

import orjson

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
FLUSH_INTERVAL_S = 0.1  # longest a written line waits in the buffer before reaching the stream
MAX_PENDING_LINES = 2000  # past this a writer flushes itself: bounds memory under a log storm
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE


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


class _Sink:
    """Buffered lines for one stream; a background thread writes them out every 100 ms.

    Writers only append to a deque (atomic, no lock: a line costs a method call); the single
    drainer pops what it finds, so lines appended meanwhile wait for the next flush.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending: deque[bytes] = deque()
        self._drain = threading.Lock()  # one drainer at a time: the thread, flush(), errors
        self._thread: threading.Thread | None = None

    def write(self, line: bytes, *, urgent: bool = False) -> None:
        self._pending.append(line)
        if urgent or len(self._pending) >= MAX_PENDING_LINES:
            self.flush()
        elif self._thread is None:
            self._start()

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


class _Config:
    """What configure_logging chose; loggers read it at each call, so module-level loggers
    created before configuration follow it."""

    def __init__(self) -> None:
        self.level = logging.INFO
        self.json = True
        self.sink = _Sink(sys.stdout)
        self.clock = _Clock()


_config = _Config()


def _render_console(fields: dict[str, Any]) -> bytes:
    event, level, stamp = fields.pop("event"), fields.pop("level"), fields.pop("timestamp")
    error = fields.pop("exception", None)
    rest = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                    for k, v in sorted(fields.items()))
    text = f"{stamp} [{level:<9}] {event:<30} {rest}".rstrip() + "\n"
    return (text + error + "\n" if error else text).encode()


class Logger:
    """A logger with bound context: ``log.bind(queue=...)`` once, ``log.info("event", k=v)``."""

    __slots__ = ("_context",)

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        self._context = context or {}

    def bind(self, **fields: Any) -> Logger:
        return Logger({**self._context, **fields})

    def _emit(self, level: int, name: str, event: str, fields: dict[str, Any],
              exc_info: bool = False) -> None:
        config = _config
        if level < config.level:
            return
        line = {**self._context, **fields} if self._context else fields
        line["event"] = event
        line["level"] = name
        line["timestamp"] = config.clock.now()
        if exc_info:
            line["exception"] = traceback.format_exc()
        rendered = (orjson.dumps(line, default=repr, option=_JSON_OPTIONS) if config.json
                    else _render_console(line))
        config.sink.write(rendered, urgent=level >= logging.ERROR)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, "error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the traceback of the exception being handled."""
        self._emit(logging.ERROR, "error", event, fields, exc_info=True)


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Set this process's level, format and stream; events below ``level`` cost one compare."""
    flush()
    _config.level = LEVELS[level]
    _config.json = fmt == "json"
    _config.sink = _Sink(stream or sys.stdout)
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> Logger:
    """A logger; ``name`` documents the caller (lines carry no logger name, as before)."""
    return Logger()


def flush() -> None:
    """Write every buffered line now: call before ``os._exit`` (atexit covers normal exits)."""
    _config.sink.flush()


def _after_fork_in_child() -> None:
    # The flusher thread does not survive fork, its lock may have been held, and the parent
    # writes the lines it had buffered itself.
    sink = _config.sink
    sink._pending.clear()
    sink._drain = threading.Lock()
    sink._thread = None


atexit.register(flush)
os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["LEVELS", "Logger", "configure_logging", "flush", "get_logger"]
