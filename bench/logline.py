"""Cost of one lifecycle log line (``job.completed`` with a job's bound context), in µs, next to
the structlog set-up jobq used before (JSON renderer, ISO timestamper, one flushed print a line).

    .venv/bin/python bench/logline.py [--lines 100000]

Lines go to a file, as a worker's stdout does in a container. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any, TextIO

from jobq import logs

CONTEXT = {"queue": "email-queue", "worker": "host-1234-abcd"}
JOB = {"jobId": "0123456789abcdef0123456789abcdef", "type": "welcome-email", "attempt": 1}


def per_call_us(lines: int, fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    for _ in range(lines):
        fn()
    return (time.perf_counter() - started) / lines * 1e6


def jobq_logger(out: TextIO) -> Any:
    logs.configure_logging("info", "json", out)
    return logs.get_logger("bench").bind(**CONTEXT).bind(**JOB)


def structlog_logger(out: TextIO) -> Any:
    import structlog

    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.PrintLoggerFactory(out), cache_logger_on_first_use=True)
    return structlog.get_logger("bench").bind(**CONTEXT).bind(**JOB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobq-logline-") as tmp:
        with open(f"{tmp}/jobq.log", "w") as out:
            log = jobq_logger(out)
            new = per_call_us(args.lines, lambda: log.info("job.completed", durationS=0.00123))
            started = time.perf_counter()
            logs.flush()
            new += (time.perf_counter() - started) / args.lines * 1e6
            off = per_call_us(args.lines, lambda: log.debug("job.handler_error"))
            base = logs.get_logger("bench").bind(**CONTEXT)
            bind = per_call_us(args.lines, lambda: base.bind(**JOB))
        print(f"jobq log line (JSON, bound context, buffered to a file): {new:.2f} µs "
              f"(a line below the level {off:.2f} µs, binding a job's context {bind:.2f} µs)")
        try:
            with open(f"{tmp}/structlog.log", "w") as out:
                old_log = structlog_logger(out)
                old = per_call_us(args.lines,
                                  lambda: old_log.info("job.completed", durationS=0.00123))
        except ImportError:
            return
        print(f"structlog line as configured before: {old:.2f} µs; "
              f"jobq / structlog cost: {new / old:.2f}")


if __name__ == "__main__":
    main()
