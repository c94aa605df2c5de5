"""Reading what flow control did from the job histories (R17): start times per job, starts
per sliding window, and how many attempts of one key overlapped."""

from __future__ import annotations

from datetime import datetime

from jobq.client import Client
from jobq.jobs import JobPublic, State


def ms(iso: str | None) -> int:
    assert iso is not None
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def all_completed(client: Client, ids: list[str]) -> list[JobPublic] | None:
    jobs = [await client.get_job(i) for i in ids]
    return jobs if all(j.state is State.COMPLETED for j in jobs) else None


def starts(jobs: list[JobPublic]) -> list[int]:
    """Every attempt's start, sorted (ms, Redis's clock)."""
    return sorted(ms(h.startedAt) for j in jobs for h in j.history)


def most_in_window(times: list[int], window_ms: int) -> int:
    """The most starts in any half-open window [t, t + window_ms)."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


def most_overlapping(jobs: list[JobPublic]) -> int:
    """The most attempts running at once (an attempt ends where its history says; at a tie an
    end comes before a start: a slot freed and taken in the same millisecond)."""
    marks = []
    for j in jobs:
        for h in j.history:
            marks.append((ms(h.startedAt), 1))
            marks.append((ms(h.finishedAt), -1))
    running = best = 0
    for _, step in sorted(marks):
        running += step
        best = max(best, running)
    return best
