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

Only below PREFETCH_BELOW_SLOTS, the queues of one lane: from 32 slots on the two lanes
overlap one lane's claim with the other's runs. Prefetch was first kept below 16 slots: at 16 it
drained less than no prefetch while a lane refilled its buffer at each freed slot (claims of one
or two jobs); refilling once the buffer is empty, a claim at 16 slots carries about 17 jobs
(0.06 script calls a job, against 0.21-0.27 without prefetch) and drained 29-53 % more in three
runs of three (ad hoc, loaded VM; bench/sidebyside.py figures in docs/performance.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobq.scripts import Claimed

if TYPE_CHECKING:
    from jobq.tracing.spans import Attempt

PREFETCH_BELOW_SLOTS = 32  # a queue prefetches below this concurrency (see below)
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
