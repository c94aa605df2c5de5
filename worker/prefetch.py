"""Prefetch: how far a lane leases ahead of its free slots (see runner.py and
docs/architecture.md, "Overlapping claims with runs").

With few slots a lane's loop was serial: claim, run, complete-and-claim, each job waiting a
round trip nothing overlapped. A prefetching lane leases up to ``slots`` jobs more than it has
free slots; a freed slot starts the next one at once, and once the buffer is empty the claim
that refills it (carrying the completions) is in flight while the jobs it started run.
Measured with bench/sidebyside.py: per-slot lanes (one claim in flight per slot, as BullMQ)
drained no more at concurrency 4 for more worker and Redis CPU per job (every call carries one
job); prefetch keeps the batch.

A prefetched job is leased like a running one (in the lease table: renewed; put back at
shutdown). A lane prefetches only while its jobs are short (PREFETCH_BELOW_S on average), and a
prefetched job starts within FRESH_S of its claim or goes back to the front of the queue
(``put_back``, not counted as a hand-back): a pause, a later high-priority job or another idle
worker waits at most FRESH_S longer than without prefetch, and a worker never hoards jobs.

Only below PREFETCH_BELOW_SLOTS: at concurrency 16 the slots already overlap a claim with runs
(some run while others wait for it), and prefetch there cost 18 % more worker CPU per job and
drained less in two runs of three (bench/sidebyside.py, 10,000 jobs, against no prefetch).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobq.scripts import Claimed

if TYPE_CHECKING:
    from jobq.tracing.spans import Attempt

PREFETCH_BELOW_SLOTS = 16  # a queue prefetches below this concurrency (see below)
PREFETCH_BELOW_S = 0.02  # a lane prefetches while its jobs average less than this
FRESH_S = 0.05  # a prefetched job not started this long after its claim goes back
_WEIGHT = 0.2  # of the newest duration in the moving average


@dataclass(slots=True, eq=False)
class Prefetched:
    """A leased job waiting in a lane for a slot."""

    claimed: Claimed
    redis_now_ms: int  # Redis's clock when it was claimed
    claimed_at: float  # loop time when it was claimed
    span: AbstractContextManager[Attempt] | None = None  # its process span (R25), not entered yet


def depth(slots: int, avg_s: float | None) -> int:
    """Jobs a lane may hold beyond its free slots: ``slots`` while its jobs are short, none
    before the first has ended (nothing is known yet) or while they are long (the round trip
    saved is small next to the job, and other workers could start the jobs held here)."""
    if avg_s is None or avg_s >= PREFETCH_BELOW_S:
        return 0
    return slots


def duration_average(avg_s: float | None, duration_s: float) -> float:
    return duration_s if avg_s is None else avg_s + _WEIGHT * (duration_s - avg_s)
