"""R17, priorities: the highest priority first, FIFO within one, whichever script put the job
in line (enqueue, promotion of a delayed job, hand-back, replay), and with a real worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_fixtures import assert_error
from fixtures import eventually, job_in, process_env

from jobq.client import Client
from jobq.errors import InvalidPayload
from jobq.jobs import State
from jobq.listing import list_jobs
from jobq.settings import Settings

JOBQ = str(Path(sys.executable).with_name("jobq"))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "flowtasks"]})


async def test_claim_takes_the_highest_priority_first_and_fifo_within_one(
    client: Client,
) -> None:
    q = client.keys("prio-queue")
    low = [(await client.enqueue("prio-record", f"low{i}", {}, priority=1)).job_id
           for i in range(30)]
    middle = [(await client.enqueue("prio-record", f"mid{i}", {})).job_id for i in range(30)]
    top = (await client.enqueue("prio-record", "top", {}, priority=9)).job_id
    task_default = (await client.enqueue("urgent-record", "urgent", {})).job_id  # the task's 8
    assert (await client.get_job(top)).priority == 9
    assert (await client.get_job(middle[0])).priority == 5
    assert (await client.counts())["prio-queue"]["waiting"] == 62
    page = await list_jobs(client, "prio-queue", "waiting", 3, None)
    assert [j.jobId for j in page.items] == [top, task_default, middle[0]]
    page = await list_jobs(client, "prio-queue", "waiting", 30, page.nextCursor)
    assert [j.jobId for j in page.items] == middle[1:] + low[:1]  # across two lists

    _, _, first = await client.scripts.claim(q, 3, 30_000, "w1")
    assert [j.job_id for j in first] == [top, task_default, middle[0]]
    _, _, rest = await client.scripts.claim(q, 100, 30_000, "w1")
    assert [j.job_id for j in rest] == middle[1:] + low
    assert await client.redis.exists(q.bell, q.levels) == 0  # all lines empty: silent again


async def test_promoted_handed_back_and_cancelled_jobs_keep_their_priority(
    client: Client,
) -> None:
    q = client.keys("prio-queue")
    plain = [(await client.enqueue("prio-record", f"p{i}", {})).job_id for i in range(3)]
    later = (await client.enqueue("prio-record", "later", {}, priority=7, delay_s=0.05)).job_id
    gone = (await client.enqueue("prio-record", "gone", {}, priority=2)).job_id
    assert await client.scripts.cancel(q, gone, 100, 10**9) is True

    due = float(await client.redis.zscore(q.delayed, later) or 0)

    async def is_due() -> bool:
        seconds, micros = await client.redis.time()
        return seconds * 1000 + micros // 1000 >= due

    await eventually(is_due, what="the delayed job to fall due")
    _, _, (promoted,) = await client.scripts.claim(q, 1, 30_000, "w1")
    assert promoted.job_id == later  # promoted into its own line, ahead of the default one
    _, _, (held,) = await client.scripts.claim(q, 1, 30_000, "w1")
    assert held.job_id == plain[0]
    assert await client.scripts.handback(q, [(held.job_id, held.token)]) == 1
    low = (await client.enqueue("prio-record", "low", {}, priority=0)).job_id
    _, _, jobs = await client.scripts.claim(q, 10, 30_000, "w1")
    assert [j.job_id for j in jobs] == [plain[0], plain[1], plain[2], low]
    assert jobs[0].attempt == 1  # handed back: the attempt was not spent


async def test_a_high_priority_job_enqueued_after_a_flood_starts_next(
    client: Client, start_worker, tmp_path: Path,
) -> None:
    order = tmp_path / "order.log"
    start_worker("prio-queue:1", JOBQ_TEST_ORDER_FILE=str(order))
    running = (await client.enqueue("prio-record", "running", {"seconds": 1.0})).job_id
    await eventually(lambda: job_in(client, running, State.ACTIVE), what="the first job")
    flood = [(await client.enqueue("prio-record", f"flood{i}", {}, priority=0)).job_id
             for i in range(200)]
    urgent = (await client.enqueue("prio-record", "urgent", {}, priority=9)).job_id

    async def started(n: int) -> list[str] | None:
        lines = order.read_text().split("\n")[:-1] if order.exists() else []
        return [line.split()[0] for line in lines] if len(lines) >= n else None

    seen = await eventually(lambda: started(5), what="five jobs to start")
    assert seen[:5] == [running, urgent, *flood[:3]]


async def test_priority_over_http_and_the_command_line(
    api: httpx.AsyncClient, client: Client, settings: Settings,
) -> None:
    body = {"type": "prio-record", "idempotencyKey": "http-9", "payload": {},
            "options": {"priority": 9}}
    answer = await api.post("/jobs", json=body)
    assert answer.status_code == 202, answer.text
    assert (await api.get(f"/jobs/{answer.json()['jobId']}")).json()["priority"] == 9
    for bad in (10, -1, "9", True):
        refused = await api.post("/jobs", json={**body, "idempotencyKey": f"bad-{bad}",
                                                "options": {"priority": bad}})
        assert_error(refused, 422)

    cli = subprocess.run([JOBQ, "enqueue", "prio-record", "--key", "cli-0", "--priority", "0"],
                         env=process_env(settings), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert (await client.get_job(cli.stdout.split()[0])).priority == 0
    out_of_range = subprocess.run(
        [JOBQ, "enqueue", "prio-record", "--key", "cli-x", "--priority", "12"],
        env=process_env(settings), capture_output=True, text=True, timeout=60)
    assert out_of_range.returncode != 0 and "Traceback" not in out_of_range.stderr
    assert "--priority" in out_of_range.stderr
    with pytest.raises(InvalidPayload, match="priority"):
        await client.enqueue("prio-record", "sdk-x", {}, priority=10)
