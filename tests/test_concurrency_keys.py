"""R17, concurrency keys: at most N jobs of one key running at once across every worker
process, a killed worker's slot coming back with its lease, and fairness between a heavy
tenant and a light one. Counted from the job histories."""

from __future__ import annotations

import pytest
from fixtures import Proc, eventually
from flowcheck import all_completed, most_overlapping, ms

from jobq.client import Client
from jobq.jobs import State
from jobq.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "flowtasks"]})


async def test_a_parked_job_spends_no_attempt_and_gets_the_freed_slot_first(
    client: Client,
) -> None:
    q = client.keys("conc-queue")
    ids = [(await client.enqueue("tenant-capped", f"c{i}", {"tenant": "t"})).job_id
           for i in range(4)]
    answer = await client.scripts.claim_answer(q, 10, 30_000, "w1")
    assert [j.job_id for j in answer.jobs] == ids[:2] and answer.held_concurrency == 2
    assert (await client.get_job(ids[2])).limitedBy == "concurrency"
    counts = (await client.counts())["conc-queue"]
    assert (counts["waiting"], counts["active"], counts["limited"]) == (2, 2, 2)
    assert await client.scripts.cancel(q, ids[3], 100, 10**9) is True
    assert (await client.counts())["conc-queue"]["limited"] == 1

    first = answer.jobs[0]
    assert await client.scripts.complete(q, 100, 10**9, [(first.job_id, first.token, "{}")])
    answer = await client.scripts.claim_answer(q, 10, 30_000, "w1")
    assert [(j.job_id, j.attempt) for j in answer.jobs] == [(ids[2], 1)]
    assert (await client.get_job(ids[2])).limitedBy is None
    assert (await client.counts())["conc-queue"]["limited"] == 0


async def test_a_concurrency_key_never_exceeds_its_limit_across_processes_and_a_kill(
    client: Client, start_worker,
) -> None:
    workers = [start_worker("conc-queue:4"), start_worker("conc-queue:4")]
    ids = [(await client.enqueue("tenant-capped", f"k{i}", {"tenant": "a", "seconds": 1.0})
            ).job_id for i in range(10)]
    ids += [(await client.enqueue("tenant-capped", f"m{i}", {"tenant": "b", "seconds": 0.5})
             ).job_id for i in range(4)]

    async def worker_holding_a() -> Proc | None:
        """The worker running one of tenant a's jobs: either may hold both of a's slots,
        since a worker freeing a slot claims the key's next job in the same script call."""
        for job_id in ids[:10]:
            job = await client.get_job(job_id)
            if job.state is not State.ACTIVE:
                continue
            for worker in workers:
                if f"-{worker.pid}-" in (job.history[-1].worker or ""):
                    return worker
        return None

    victim = await eventually(worker_holding_a, what="a worker to run one of tenant a's jobs")
    victim.kill9()
    jobs = await eventually(lambda: all_completed(client, ids), timeout=60,
                            what="every job to complete, the killed worker's ones included")
    a_jobs, b_jobs = jobs[:10], jobs[10:]
    assert any(h.outcome == "lost" for j in a_jobs for h in j.history)
    assert most_overlapping(a_jobs) == 2
    assert most_overlapping(b_jobs) == 2


async def test_a_light_tenant_is_not_starved_by_a_heavy_one(
    client: Client, start_worker,
) -> None:
    start_worker("conc-queue:4")
    heavy = [(await client.enqueue("tenant-capped", f"h{i}", {"tenant": "h", "seconds": 0.2})
              ).job_id for i in range(40)]
    light = [(await client.enqueue("tenant-capped", f"l{i}", {"tenant": "l", "seconds": 0.2})
              ).job_id for i in range(4)]
    light_jobs = await eventually(lambda: all_completed(client, light), timeout=30,
                                  what="the light tenant's jobs to complete")
    heavy_jobs = await eventually(lambda: all_completed(client, heavy), timeout=60,
                                  what="the heavy tenant's jobs to complete")
    light_done = max(ms(j.finishedAt) for j in light_jobs)
    heavy_done = sorted(ms(j.finishedAt) for j in heavy_jobs)
    assert light_done < heavy_done[10]  # not behind the heavy tenant's 40 jobs
    assert most_overlapping(heavy_jobs) == 2 and most_overlapping(light_jobs) == 2
