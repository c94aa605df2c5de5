"""The per-job code the app-developer changes touched, old against new in one process,
interleaved: storing a result (``jobs.dumps`` before, ``results.encode_result`` now, whose
orjson fallback is only called for types orjson does not know) and building a ``JobContext``
(one more field, ``state``), and what a registry without middleware hands the worker (the
handler as declared: no wrapper to call).

    .venv/bin/python bench/perjob_delta.py [--calls 200000] [--trials 5]

Prints nanoseconds per call (median of the trials); asserts nothing. Whole-worker figures come
from bench/sidebyside.py; this isolates the lines that changed, which a loaded 2-core machine's
noise hides there.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from jobq.context import JobContext
from jobq.jobs import dumps
from jobq.results import encode_result
from jobq.settings import Settings
from jobq.tasks import Registry, task

RESULT = {"ok": True, "n": 12, "to": "ada@example.com"}  # a dict result, as most handlers give


class Empty(BaseModel):
    n: int = 0


@task("noop", queue="q", payload=Empty)
async def noop(ctx: JobContext, payload: Empty) -> dict[str, int]:
    return {"n": payload.n}


def per_call_ns(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    settings = Settings()

    def context() -> JobContext:
        return JobContext(job_id="j", type="noop", queue="q", attempt=1, max_attempts=3,
                          worker="w", token="t", settings=settings, log=None,
                          _scripts=None, _keys=None, _loop=loop)  # type: ignore[arg-type]

    cases: dict[str, Callable[[], Any]] = {
        "result: jobs.dumps (before)": lambda: dumps(RESULT),
        "result: encode_result (now)": lambda: encode_result(RESULT),
        "JobContext(...) (now, with state)": context,
    }
    rows: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.trials):
        for name, fn in cases.items():
            rows[name].append(per_call_ns(fn, args.calls))
    for name, samples in rows.items():
        print(f"{name}: {statistics.median(samples):.0f} ns/call")
    unwrapped = Registry([noop]).get("noop").handler is noop.handler
    print(f"registry without middleware stores the handler as declared: {unwrapped}")
    loop.close()


if __name__ == "__main__":
    main()
