"""R9: SIGTERM finishes what fits in the grace period and hands back the rest unspent."""

from __future__ import annotations

from fixtures import events, eventually, job_in, logged, metrics_port

from jobq.client import Client
from jobq.jobs import State
from jobq.worker.watchdog import AFTER_GRACE_S, EXIT_STUCK


async def test_sigterm_hands_back_a_long_job_without_spending_an_attempt(
    client: Client, start_worker
) -> None:
    worker = start_worker("report-queue:1", JOBQ_SHUTDOWN_GRACE_S="0.5")
    await metrics_port(worker)
    job_id = (await client.enqueue("sleep", "long", {"seconds": 60})).job_id
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="job active")
    # Started, not only leased: a job claimed but not yet started when SIGTERM lands is put
    # back as if never claimed (no attempt, no history), which a loaded machine can show.
    await logged(worker, "job.started")
    worker.terminate()
    assert worker.wait(timeout=20) == 0
    job = await client.get_job(job_id)
    assert job.state is State.WAITING and job.attempts == 0
    assert [(h.attempt, h.outcome) for h in job.history] == [(1, "handed-back")]
    assert [e["jobId"] for e in events(worker, "job.handed_back")] == [job_id]
    # The next worker takes it first and spends its first attempt on it.
    start_worker("report-queue:1")
    later = await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="taken again")
    assert later.attempts == 1
    assert [(h.attempt, h.outcome) for h in later.history] == [(1, "handed-back"), (1, None)]


async def test_sigterm_ends_a_job_whose_cancel_the_worker_had_not_learnt_yet_cancelled(
    client: Client, start_worker
) -> None:
    """Cancel requested, then SIGTERM before the worker's next lease renewal (a third of a 60 s
    lease) could tell it: the hand-back ends the job cancelled, it does not wait to run again."""
    worker = start_worker("report-queue:1", JOBQ_SHUTDOWN_GRACE_S="0.5", JOBQ_LEASE_S="60")
    await metrics_port(worker)
    job_id = (await client.enqueue("sleep", "cancel-then-stop", {"seconds": 60})).job_id
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="job active")
    await logged(worker, "job.started")  # running, not only leased (see the test above)
    q = client.keys("report-queue")
    assert await client.scripts.cancel(q, job_id, 10, 60_000) is False  # running: requested
    worker.terminate()
    assert worker.wait(timeout=20) == 0
    job = await client.get_job(job_id)
    assert (job.state, job.attempts) == (State.CANCELLED, 1)
    assert [h.outcome for h in job.history] == ["cancelled"]
    assert (await client.counts())["report-queue"]["waiting"] == 0


async def test_sigterm_lets_a_job_finish_within_the_grace(client: Client, start_worker) -> None:
    worker = start_worker("report-queue:1", JOBQ_SHUTDOWN_GRACE_S="10")
    job_id = (await client.enqueue("sleep", "short", {"seconds": 1.0})).job_id
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="job active")
    await logged(worker, "job.started")  # running, not only leased (see the first test)
    worker.terminate()
    assert worker.wait(timeout=20) == 0
    job = await client.get_job(job_id)
    assert job.state is State.COMPLETED and job.attempts == 1


async def test_sigterm_does_not_wait_for_a_stuck_sync_handler(
    client: Client, start_worker
) -> None:
    worker = start_worker("report-queue:1", JOBQ_SHUTDOWN_GRACE_S="0.5")
    job_id = (await client.enqueue("sync-sleep", "stuck", {"seconds": 60})).job_id
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="job active")
    await logged(worker, "job.started")  # stuck in its thread, not only leased
    worker.terminate()
    assert worker.wait(timeout=15) == 0
    job = await client.get_job(job_id)
    assert job.state is State.WAITING and job.attempts == 0


async def test_watchdog_ends_a_worker_whose_loop_is_blocked_and_hands_its_job_back(
    client: Client, start_worker
) -> None:
    """A handler blocking the event loop defeats every bounded wait of the orderly shutdown;
    the watchdog thread still ends the process, non-zero, with the job handed back."""
    worker = start_worker("report-queue:1", JOBQ_SHUTDOWN_GRACE_S="0.5")
    await metrics_port(worker)
    job_id = (await client.enqueue("hog", "blocks-the-loop", {"seconds": 120})).job_id
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="job active")
    # Leased is not yet running: a SIGTERM before the handler blocks the loop is an orderly stop.
    # The log thread writes job.started even while the loop is blocked.
    await logged(worker, "job.started")
    worker.terminate()
    assert worker.wait(timeout=0.5 + AFTER_GRACE_S + 15) == EXIT_STUCK
    job = await client.get_job(job_id)
    assert job.state is State.WAITING and job.attempts == 0
    [stuck] = events(worker, "worker.shutdown_stuck")
    assert any("time.sleep(payload.seconds)" in stack for stack in stuck["threads"].values())
    assert [e["jobId"] for e in events(worker, "job.handed_back")] == [job_id]
    assert not events(worker, "worker.stopped")
