"""R16 on real worker processes: a cancelled waiting or delayed job never starts; a cancelled
running job's handler is cancelled (async: its task; sync: ``ctx.cancelled``) and its attempt
ends ``cancelled``: terminal, not a failure, no DLQ entry."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from api_fixtures import assert_error
from fixtures import Proc, eventually, job_in, metrics_port, scraped

from jobq.client import Client
from jobq.jobs import State


async def post_job(api: httpx.AsyncClient, task_type: str, key: str, payload: dict[str, object],
                   **options: object) -> str:
    body: dict[str, object] = {"type": task_type, "idempotencyKey": key, "payload": payload}
    if options:
        body["options"] = options
    created = await api.post("/jobs", json=body)
    assert created.status_code == 202, created.text
    return str(created.json()["jobId"])


async def test_cancelled_waiting_and_delayed_jobs_never_start(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc]
) -> None:
    waiting = await post_job(api, "sleep", "c-waiting", {"seconds": 0})
    delayed = await post_job(api, "sleep", "c-delayed", {"seconds": 0}, delaySeconds=0.5)
    for job_id in (waiting, delayed):
        answer = await api.post(f"/jobs/{job_id}/cancel")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"jobId": job_id, "state": "cancelled", "cancelRequested": True}
    # A job queued after them runs: once it completed, the worker has passed the cancelled ones
    # (it claims oldest first) and the delayed one is long due.
    after = await post_job(api, "sleep", "c-after", {"seconds": 0}, delaySeconds=0.6)
    start_worker("report-queue:2")
    await eventually(lambda: job_in(client, after, State.COMPLETED), what="the later job")
    for job_id in (waiting, delayed):
        job = await client.get_job(job_id)
        assert job.state is State.CANCELLED and job.attempts == 0 and job.history == []
        assert job.processedAt is None and job.finishedAt is not None
    counts = (await client.counts())["report-queue"]
    assert (counts["cancelled"], counts["dlq"], counts["failed"], counts["waiting"]) == (2, 0, 0, 0)
    listed = (await api.get("/queues/report-queue/jobs", params={"state": "cancelled"})).json()
    assert sorted(j["jobId"] for j in listed["items"]) == sorted([waiting, delayed])

    again = await api.post(f"/jobs/{waiting}/cancel")
    assert_error(again, 409, "job_finished")
    assert_error(await api.post("/jobs/nope/cancel"), 404, "not_found")


@pytest.mark.parametrize(("task_type", "payload"), [
    ("sleep", {"seconds": 60}),  # async: the handler's task is cancelled
    ("sync-until-cancelled", {"seconds": 60}),  # sync: the handler sees ctx.cancelled
])
async def test_cancelled_running_job_ends_cancelled_not_failed(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc],
    task_type: str, payload: dict[str, object],
) -> None:
    worker = start_worker("report-queue:1")
    job_id = await post_job(api, task_type, f"c-running-{task_type}", payload)
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="the job to start")
    answer = await api.post(f"/jobs/{job_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "active"
    # The worker learns of it at its next lease renewal (a third of the 4 s lease).
    job = await eventually(lambda: job_in(client, job_id, State.CANCELLED), timeout=15,
                           what="the running job to end cancelled")
    assert [h.outcome for h in job.history] == ["cancelled"]
    assert job.attempts == 1 and job.deadLetterId is None and job.result is None
    counts = (await client.counts())["report-queue"]
    assert (counts["cancelled"], counts["dlq"], counts["failed"], counts["active"]) == (1, 0, 0, 0)
    assert [e for e in (await client.list_dlq("report-queue")).items] == []
    await scraped(await metrics_port(worker),
                  f'jobq_jobs_cancelled_total{{queue="report-queue",type="{task_type}"}}', 1)
    # The slot is free again: the next job runs.
    nxt = await post_job(api, "sleep", f"c-next-{task_type}", {"seconds": 0})
    await eventually(lambda: job_in(client, nxt, State.COMPLETED), what="the next job")


async def test_a_running_job_is_cancelled_long_before_its_next_lease_renewal(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc],
) -> None:
    """The worker does not wait for its next renewal to learn of a cancel: with a 10-minute
    lease (renewals 200 s apart) the job still ends ``cancelled`` well within the wait below,
    which only a loaded machine's slowness could approach."""
    start_worker("report-queue:1", JOBQ_LEASE_S="600")
    job_id = await post_job(api, "sleep", "c-prompt", {"seconds": 600})
    await eventually(lambda: job_in(client, job_id, State.ACTIVE), what="the job to start")
    answer = await api.post(f"/jobs/{job_id}/cancel")
    assert answer.json()["state"] == "active", answer.text
    job = await eventually(lambda: job_in(client, job_id, State.CANCELLED), timeout=30,
                           what="the running job to end cancelled before any renewal")
    assert [h.outcome for h in job.history] == ["cancelled"]
