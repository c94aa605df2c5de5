"""R5, R6, R7: retries with backoff, exactly one DLQ entry, explicit replay."""

from __future__ import annotations

from datetime import datetime

from fixtures import eventually, job_in, logged, metrics_port, scraped

from jobq.client import Client
from jobq.jobs import Backoff, State


def _t(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_three_attempts_with_backoff_then_one_dlq_entry(
    client: Client, start_worker
) -> None:
    worker = start_worker("report-queue:2")
    port = await metrics_port(worker)
    job_id = (await client.enqueue("flaky", "f", {"failTimes": 9}, attempts=3,
                                   backoff=Backoff(type="fixed", delaySeconds=0.5))).job_id
    job = await eventually(lambda: job_in(client, job_id, State.FAILED), what="the job to fail for good")
    assert job.attempts == 3 and [h.outcome for h in job.history] == ["failed"] * 3
    for before, after in zip(job.history, job.history[1:], strict=False):
        assert _t(after.startedAt) - _t(before.finishedAt) >= 0.5 - 0.002
    page = await client.list_dlq("report-queue")
    assert len(page.items) == 1
    entry = page.items[0]
    assert entry.dlqId == job.deadLetterId
    assert (entry.originalJobId, entry.type, entry.queue, entry.payload, entry.attempts) == (
        job_id, "flaky", "report-queue", {"failTimes": 9}, 3)
    assert "attempt 3 fails" in (entry.failedReason or "") and entry.failedAt
    labels = '{queue="report-queue",type="flaky"}'
    metrics = await scraped(port, f"dlq_jobs_total{labels}", 1)
    assert metrics[f"jobq_job_attempts_failed_total{labels}"] == 3
    assert len(await logged(worker, "job.dead_lettered")) == 1
    assert len(await logged(worker, "job.retry_scheduled", 2)) == 2
    assert worker.popen.poll() is None  # failing jobs never crash the worker (R10)


async def test_permanent_error_skips_remaining_attempts(client: Client, start_worker) -> None:
    start_worker("report-queue:1")
    job_id = (await client.enqueue("always-permanent", "p", {})).job_id
    job = await eventually(lambda: job_in(client, job_id, State.FAILED), what="permanent failure")
    assert job.attempts == 1 and job.maxAttempts == 5


async def test_replay_creates_a_new_job_and_a_second_failure_a_second_entry(
    client: Client, start_worker
) -> None:
    start_worker("report-queue:2")
    job_id = (await client.enqueue("flaky", "r", {"failTimes": 9}, attempts=1)).job_id
    failed = await eventually(lambda: job_in(client, job_id, State.FAILED), what="first failure")
    dlq_id = failed.deadLetterId
    assert dlq_id
    before = await client.get_dlq_entry(dlq_id)

    replay = await client.replay(dlq_id)
    assert replay.job_id != job_id and replay.replayed_from_job_id == job_id
    again = await eventually(lambda: job_in(client, replay.job_id, State.FAILED), timeout=30,
                             what="the replay to fail for good")
    assert (again.replayedFromJobId, again.dlqId) == (job_id, dlq_id) and again.replayedAt
    assert again.deadLetterId and again.deadLetterId != dlq_id
    after = await client.get_dlq_entry(dlq_id)
    assert after.model_dump(exclude={"replays"}) == before.model_dump(exclude={"replays"})
    assert [r.jobId for r in after.replays] == [replay.job_id]
    second = await client.get_dlq_entry(again.deadLetterId)
    assert second.originalJobId == replay.job_id
    assert len((await client.list_dlq("report-queue")).items) == 2


async def test_handler_timeout_fails_the_attempt(client: Client, start_worker) -> None:
    start_worker("report-queue:1")
    job_id = (await client.enqueue("too-slow", "t", {"seconds": 30})).job_id
    job = await eventually(lambda: job_in(client, job_id, State.FAILED), what="timeouts")
    assert [h.outcome for h in job.history] == ["timeout", "timeout"]
    assert "no result within 0.5s" in (job.failedReason or "")


async def test_retry_later_uses_its_own_delay(client: Client, start_worker) -> None:
    start_worker("report-queue:1")
    job_id = (await client.enqueue("retry-later", "rl", {})).job_id
    job = await eventually(lambda: job_in(client, job_id, State.COMPLETED), what="the retry")
    assert [h.outcome for h in job.history] == ["failed", "completed"]
    assert "upstream busy" in (job.history[0].error or "")
    gap = _t(job.history[1].startedAt) - _t(job.history[0].finishedAt)
    assert 0.3 - 0.002 <= gap < 4.0  # its own 0.3 s, not the task's 5 s backoff
