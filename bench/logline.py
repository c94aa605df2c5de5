"""Cost of one lifecycle log line (``job.completed`` with a job's bound context), in µs, for each
way jobq has written it, in the same run:

* jobq's logger now: structlog configured for speed (filtering bound logger, cached, orjson
  renderer) handing lines to jobq's buffer, written out by a background thread (jobq.logs);
* the same structlog set-up with structlog's own ``BytesLogger`` (a write and a flush a line),
  which is what the buffer has to beat to earn its place;
* the hand-written logger jobq used before (bench/_handwritten_logger.py, jobq@d0f8ead);
* structlog as jobq first configured it (stdlib JSON, ISO timestamper, one flushed print a line).

    .venv/bin/python bench/logline.py [--lines 100000] [--rounds 3]

Lines go to a file (as in bench/sidebyside.py) and to a pipe a thread drains (as a worker's
stdout in a container, read by its runtime). Each figure is the median of the
rounds (the loggers take turns); a buffered logger's figure includes writing its buffer out.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

import _handwritten_logger as handwritten  # bench/ (the script's folder) is on sys.path
import orjson
import structlog

from jobq import logs

CONTEXT = {"queue": "email-queue", "worker": "host-1234-abcd"}
JOB = {"jobId": "0123456789abcdef0123456789abcdef", "type": "welcome-email", "attempt": 1}


def per_call_us(lines: int, fn: Callable[[], None], flush: Callable[[], None] | None = None
                ) -> float:
    started = time.perf_counter()
    for _ in range(lines):
        fn()
    if flush is not None:
        flush()
    return (time.perf_counter() - started) / lines * 1e6


def jobq_logger(out: TextIO) -> Any:
    structlog.reset_defaults()
    logs.configure_logging("info", "json", out)
    return logs.get_logger("bench")


def structlog_bytes_logger(out: BinaryIO) -> Any:
    structlog.reset_defaults()
    structlog.configure(
        processors=[*logs.processors("json")[:-1],
                    structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.BytesLoggerFactory(out), cache_logger_on_first_use=True)
    return structlog.get_logger("bench")


def handwritten_logger(out: TextIO) -> Any:
    handwritten.configure_logging("info", "json", out)
    return handwritten.get_logger("bench")


def structlog_as_before(out: TextIO) -> Any:
    structlog.reset_defaults()
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.PrintLoggerFactory(out), cache_logger_on_first_use=True)
    return structlog.get_logger("bench")


class Pipe:
    """A pipe a thread drains, as a container's stdout is read by its runtime."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while os.read(self.read_fd, 1 << 16):
            pass

    def open(self, mode: str) -> IO[Any]:
        return open(self.write_fd, mode, closefd=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.lines
    contenders: list[tuple[str, Callable[[Any], Any], str, Callable[[], None] | None]] = [
        ("jobq.logs: structlog (fast set-up) + jobq's buffer", jobq_logger, "w", logs.flush),
        ("structlog (fast set-up) + BytesLogger, a write a line", structlog_bytes_logger, "wb",
         None),
        ("hand-written logger before (jobq@d0f8ead), buffered", handwritten_logger, "w",
         handwritten.flush),
        ("structlog as first configured (json.dumps, print a line)", structlog_as_before, "w",
         None),
    ]
    pipe = Pipe()
    figures: dict[tuple[str, str], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="jobq-logline-") as tmp:
        for _ in range(args.rounds):
            for where in ("file", "pipe"):
                for i, (label, make, mode, flush) in enumerate(contenders):
                    with (open(f"{tmp}/{i}.log", mode) if where == "file"
                          else pipe.open(mode)) as out:
                        base = make(out).bind(**CONTEXT)
                        log = base.bind(**JOB)
                        row = figures.setdefault((label, where), {})
                        row.setdefault("line", []).append(per_call_us(
                            n, lambda log=log: log.info("job.completed", durationS=0.00123),
                            flush))
                        row.setdefault("off", []).append(
                            per_call_us(n, lambda log=log: log.debug("job.handler_error")))
                        row.setdefault("bind", []).append(
                            per_call_us(n, lambda base=base: base.bind(**JOB)))
        sample = Path(f"{tmp}/0.log").read_text().splitlines()[0]  # what jobq.logs writes
        logs.configure_logging("info", "json")
    print(f"{n:,} lines a round, median of {args.rounds} rounds, Python {sys.version.split()[0]}, "
          f"structlog {structlog.__version__}, orjson {orjson.__version__}")
    print(f"{'logger':<58} {'to':<4} {'µs/line':>8} {'below lvl':>9} {'bind':>6}")
    medians = {key: {k: statistics.median(v) for k, v in row.items()}
               for key, row in figures.items()}
    for (label, where), row in medians.items():
        print(f"{label:<58} {where:<4} {row['line']:>8.2f} {row['off']:>9.2f} "
              f"{row['bind']:>6.2f}")
    for where in ("file", "pipe"):
        new, old = (medians[(contenders[0][0], where)]["line"],
                    medians[(contenders[2][0], where)]["line"])
        print(f"to a {where}: structlog-based jobq.logs / hand-written: {new / old:.2f}")
    print(f"a line as jobq.logs writes it: {sample}")


if __name__ == "__main__":
    main()
