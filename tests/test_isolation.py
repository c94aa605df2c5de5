"""R10: a backlog of slow jobs in one queue does not delay another queue."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fixtures import eventually, metrics_port

from jobq.client import Client
from jobq.jobs import State

REPORT_S = 2.0  # one report job's run time: an email queued behind a report would wait this long
REPORTS = 40


def _t(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_report_flood_does_not_delay_email_jobs(client: Client, start_worker) -> None:
    worker = start_worker("email-queue:3", "report-queue:2")
    # Measure queues, not process start-up: enqueue only once the worker is up and running.
    await metrics_port(worker)
    await asyncio.gather(*(
        client.enqueue("sleep", f"report-{i}", {"seconds": REPORT_S}) for i in range(REPORTS)))

    async def report_slots_full() -> bool:
        return (await client.counts())["report-queue"]["active"] == 2

    await eventually(report_slots_full, what="the report flood to take both report slots")
    emails = [
        (await client.enqueue("welcome-email", f"email-{i}",
                              {"email": f"u{i}@example.com", "name": "U"})).job_id
        for i in range(10)
    ]

    async def all_emails_done() -> bool:
        jobs = [await client.get_job(j) for j in emails]
        return all(j.state is State.COMPLETED for j in jobs)

    await eventually(all_emails_done, timeout=20, what="every email job")
    email_latency = [
        _t(j.processedAt) - _t(j.createdAt) for j in [await client.get_job(e) for e in emails]
    ]
    report_counts = (await client.counts())["report-queue"]
    # Both report slots stayed busy with slow jobs and a backlog waited the whole time.
    assert report_counts["active"] == 2 and report_counts["waiting"] >= REPORTS - 10, report_counts
    assert report_counts["waiting"] + report_counts["active"] + report_counts["completed"] == REPORTS
    # No email waited for a report slot: each started in well under one report job's run time.
    assert max(email_latency) < REPORT_S / 2, email_latency
