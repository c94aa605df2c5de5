"""R23: a job whose cancel was accepted never starts again, whatever its running attempt does
afterwards: fails, fails for good, or loses its worker (the stall sweep ends it as lost). A
review of d0f8ead found each of these retried or dead-lettered."""

from __future__ import annotations

from jobq.client import Client
from jobq.jobs import State

WELCOME = {"email": "albert@example.com", "name": "Albert"}
LEASE_MS = 30_000


async def running_job_asked_to_cancel(client: Client, key: str, attempts: int):  # type: ignore[no-untyped-def]
    job_id = (await client.enqueue("welcome-email", key, WELCOME, attempts=attempts)).job_id
    q = client.keys("email-queue")
    _, _, jobs = await client.scripts.claim(q, 1, LEASE_MS, "w1")
    assert [j.job_id for j in jobs] == [job_id]
    assert await client.scripts.cancel(q, job_id, 100, 10**9) is False  # running: requested
    return q, jobs[0]


async def assert_cancelled_for_good(client: Client, job_id: str) -> None:
    q = client.keys("email-queue")
    job = await client.get_job(job_id)
    assert job.state is State.CANCELLED
    counts = (await client.counts())["email-queue"]
    assert (counts["dlq"], counts["delayed"], counts["waiting"]) == (0, 0, 0)
    _, _, jobs = await client.scripts.claim(q, 5, LEASE_MS, "w2")
    assert jobs == []


async def test_an_attempt_failing_after_the_cancel_ends_the_job_cancelled(
    client: Client,
) -> None:
    q, c = await running_job_asked_to_cancel(client, "fails", attempts=3)
    result = await client.scripts.fail(q, c.job_id, c.token, "boom", 0, permanent=False,
                                       outcome="failed", keep=10, max_age_ms=60_000)
    assert result.cancelled and result.retry_at_ms is None and result.dlq_id is None
    await assert_cancelled_for_good(client, c.job_id)
    assert [h.outcome for h in (await client.get_job(c.job_id)).history] == ["failed"]


async def test_a_last_attempt_failing_after_the_cancel_writes_no_dlq_entry(
    client: Client,
) -> None:
    q, c = await running_job_asked_to_cancel(client, "last", attempts=1)
    result = await client.scripts.fail(q, c.job_id, c.token, "boom", 0, permanent=True,
                                       outcome="timeout", keep=10, max_age_ms=60_000)
    assert result.cancelled
    await assert_cancelled_for_good(client, c.job_id)


async def test_a_lost_worker_of_a_job_asked_to_cancel_ends_it_cancelled(client: Client) -> None:
    """The worker dies before it hears of the cancel: the sweep takes the job back and ends
    the lost attempt, which must not retry it."""
    job_id = (await client.enqueue("welcome-email", "lost", WELCOME, attempts=3)).job_id
    q = client.keys("email-queue")
    _, _, jobs = await client.scripts.claim(q, 1, LEASE_MS, "dead-worker")
    assert await client.scripts.cancel(q, job_id, 100, 10**9) is False
    await client.redis.zadd(q.active, {job_id: 0}, xx=True)  # its lease has run out
    taken = await client.scripts.reclaim(q, LEASE_MS, "sweeper", 10)
    assert [t.job_id for t in taken] == [job_id]
    result = await client.scripts.fail(q, job_id, taken[0].token, "worker lost", 0,
                                       permanent=False, outcome="lost", keep=10,
                                       max_age_ms=60_000)
    assert result.cancelled
    await assert_cancelled_for_good(client, job_id)
    assert jobs
