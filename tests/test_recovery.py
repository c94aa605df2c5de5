"""R3, R4 and R8 with real worker processes killed with SIGKILL mid-attempt."""

from __future__ import annotations

from pathlib import Path

from fixtures import events, eventually, job_in, logged, metrics_port, scraped

from jobq.client import Client
from jobq.jobs import State


async def test_killed_worker_job_is_taken_over_and_its_token_is_refused(
    client: Client, start_worker
) -> None:
    workers = [start_worker("report-queue:1"), start_worker("report-queue:1")]
    ports = [await metrics_port(w) for w in workers]
    job_id = (await client.enqueue("sleep", "long", {"seconds": 60, "retrySeconds": 0})).job_id
    active = await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="job active")
    holder_id = active.history[0].worker
    assert holder_id is not None
    victim = next(w for w in workers if f"-{w.pid}-" in holder_id)
    survivor_port = ports[1 - workers.index(victim)]
    victim.kill9()

    done = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=30,
                            what="the job to complete on the other worker")
    assert [h.outcome for h in done.history] == ["lost", "completed"]
    assert done.history[1].worker != holder_id and done.attempts == 2
    assert "worker lost" in (done.history[0].error or "")
    labels = '{queue="report-queue",type="sleep"}'
    metrics = await scraped(survivor_port, f"jobq_jobs_recovered_total{labels}", 1)
    assert metrics[f"jobq_jobs_lost_total{labels}"] == 1
    assert metrics.get(f"jobq_job_attempts_failed_total{labels}", 0) == 0
    assert metrics[f"jobq_jobs_recovered_total{labels}"] == 1

    # The dead worker's token can no longer complete the job (R3).
    stale = f"{holder_id}:1"
    assert await client.scripts.complete(client.keys("report-queue"), 10, 10**9,
                                         [(job_id, stale, "null")]) == [False]
    assert (await client.get_job(job_id)).result == {"slept": 0.0, "attempt": 2}


async def test_side_effect_reserved_before_a_crash_is_skipped_on_retry(
    client: Client, start_worker, tmp_path: Path
) -> None:
    outbox = tmp_path / "effects.log"
    first = start_worker("email-queue:1", JOBQ_TEST_EFFECTS_FILE=str(outbox))
    job_id = (await client.enqueue("effect-then-hang", "fx", {"seconds": 60})).job_id

    async def effect_ran() -> bool:
        return outbox.exists() and outbox.read_text().count(job_id) == 1

    await eventually(effect_ran, what="the side effect to run once")
    first.kill9()
    second = start_worker("email-queue:1", JOBQ_TEST_EFFECTS_FILE=str(outbox))
    done = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=30,
                            what="the retry to complete")
    assert done.result == {"ran": False}
    assert outbox.read_text().count(job_id) == 1
    skipped = await logged(second, "job.side_effect_skipped")
    assert [e["effect"] for e in skipped] == ["count"]
    assert [e["jobId"] for e in await logged(second, "job.completed_recovered")] == [job_id]


async def test_lease_survives_a_handler_that_blocks_the_event_loop(
    client: Client, start_worker
) -> None:
    """The hog blocks the loop for 3 leases (lease 4 s); renewal runs on its own thread."""
    worker = start_worker("report-queue:1")
    job_id = (await client.enqueue("hog", "hog", {"seconds": 12})).job_id
    done = await eventually(lambda: job_in(client, job_id, State.COMPLETED), timeout=30,
                            what="the hog to complete")
    assert done.attempts == 1 and [h.outcome for h in done.history] == ["completed"]
    assert events(worker, "job.stalled") == []
