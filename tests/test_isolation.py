"""R10: a backlog of slow jobs in one queue does not delay another queue."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fixtures import eventually

from jobq.client import Client
from jobq.jobs import State


def _t(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_report_flood_does_not_delay_email_jobs(client: Client, start_worker) -> None:
    start_worker("email-queue:3", "report-queue:2")
    reports = await asyncio.gather(*(
        client.enqueue("sleep", f"report-{i}", {"seconds": 2}) for i in range(40)))
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
    # Both report slots were busy with slow jobs and a backlog waited the whole time.
    assert report_counts["waiting"] >= 30 and report_counts["active"] == 2, report_counts
    assert max(email_latency) < 1.0, email_latency
    assert len(reports) == 40
