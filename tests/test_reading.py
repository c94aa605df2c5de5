"""Reading jobs and queues: the answer depends on Redis only, not on which task modules the
reader loaded, and a job whose record was trimmed is "expired", not "unknown"."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fixtures import process_env
from redis.asyncio import Redis

from jobq.api.main import create_app
from jobq.client import Client
from jobq.errors import JobExpired, NotFound
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import load_registry

JOBQ = str(Path(sys.executable).with_name("jobq"))
DEMO_ONLY = ["jobq.demo"]  # the reader's tasks: testtasks' bench-queue is not among them


def jobq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([JOBQ, *args], env=process_env(settings, JOBQ_TASKS=",".join(DEMO_ONLY)),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def reader(redis: Redis, settings: Settings) -> Client:
    """A client that loaded only the demo tasks."""
    return Client(redis, load_registry(DEMO_ONLY), settings.model_copy(update={"tasks": DEMO_ONLY}))


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real API app in this process (real Redis), loaded with the demo tasks only."""
    only_demo = settings.model_copy(update={"tasks": DEMO_ONLY})
    app = create_app(only_demo, load_registry(DEMO_ONLY))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http


async def _finish(client: Client, queue: str, job_id: str, *, keep: int) -> None:
    """Run the job's one attempt to completion, keeping ``keep`` completed records."""
    q = client.keys(queue)
    _, _, (claimed,) = await client.scripts.claim(q, 1, 30_000, "w1")
    assert claimed.job_id == job_id
    assert await client.scripts.complete(q, keep, 60_000, [(job_id, claimed.token, "{}")]) == [
        True]


async def test_a_trimmed_job_is_expired_while_its_key_is_remembered(
    client: Client, api: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = (await client.enqueue("welcome-email", "trimmed",
                                   {"email": "a@example.com", "name": "A"})).job_id
    await _finish(client, "email-queue", job_id, keep=0)  # trimmed at once (R12)
    with pytest.raises(JobExpired, match="expired"):
        await client.get_job(job_id)
    with pytest.raises(NotFound) as never:
        await client.get_job("0" * 32)
    assert not isinstance(never.value, JobExpired)

    for path in (f"/jobs/{job_id}/status", f"/jobs/{job_id}"):
        gone = await api.get(path)
        assert gone.status_code == 410, gone.text
        assert gone.json()["error"]["code"] == "job_expired"
        assert set(gone.json()["error"]) == {"code", "message", "details"}
    unknown = await api.get(f"/jobs/{'0' * 32}/status")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    documented = (await api.get("/openapi.json")).json()["paths"]["/jobs/{job_id}/status"]["get"]
    assert "410" in documented["responses"]

    cli = jobq(settings, "status", job_id)
    assert cli.returncode == 5, (cli.returncode, cli.stderr)
    assert cli.stdout == "" and cli.stderr.strip().count("\n") == 0
    assert cli.stderr.startswith("jobq: error: ") and "expired" in cli.stderr
    assert jobq(settings, "status", "0" * 32).returncode == 3


async def test_jobs_and_queues_are_found_whatever_tasks_the_reader_loaded(
    client: Client, reader: Client, api: httpx.AsyncClient, settings: Settings
) -> None:
    assert "bench-queue" in client.registry.queues
    assert "bench-queue" not in reader.registry.queues
    job_id = (await client.enqueue("noop", "elsewhere", {"n": 1})).job_id

    assert (await reader.get_job(job_id)).queue == "bench-queue"
    assert (await reader.counts())["bench-queue"]["waiting"] == 1
    assert set(reader.registry.queues) < set(await reader.queues())

    status = await api.get(f"/jobs/{job_id}/status")
    assert status.status_code == 200, status.text
    assert (status.json()["queue"], status.json()["state"]) == ("bench-queue", "waiting")
    assert (await api.get(f"/jobs/{job_id}")).json()["payload"] == {"n": 1}
    listed = {q["queue"]: q for q in (await api.get("/queues")).json()["queues"]}
    assert listed["bench-queue"]["waiting"] == 1 and "email-queue" in listed
    assert (await api.get("/dlq", params={"queue": "bench-queue"})).status_code == 200

    cli = jobq(settings, "status", job_id, "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["queue"] == "bench-queue"
    queues = json.loads(jobq(settings, "queues", "--json").stdout)["queues"]
    assert {"queue": "bench-queue", "waiting": 1, "active": 0, "delayed": 0, "completed": 0,
            "failed": 0, "cancelled": 0, "dlq": 0, "limited": 0, "paused": False} in queues

    await _finish(client, "bench-queue", job_id, keep=10)
    assert (await reader.get_job(job_id)).state is State.COMPLETED



async def test_readers_need_no_task_modules_at_all(client: Client, settings: Settings) -> None:
    """``status``, ``queues`` and ``dlq list`` read Redis only: no JOBQ_TASKS is needed, while a
    command that creates jobs still refuses to start without tasks."""
    job_id = (await client.enqueue("noop", "no-tasks", {"n": 1})).job_id
    bare = process_env(settings, JOBQ_TASKS="")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JOBQ, *args], env=bare, capture_output=True, text=True, timeout=60)

    status = run("status", job_id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queue"] == "bench-queue"
    queues = {q["queue"] for q in json.loads(run("queues", "--json").stdout)["queues"]}
    assert "bench-queue" in queues
    assert run("dlq", "list", "--json").returncode == 0
    refused = run("enqueue", "noop", "--key", "k", "--payload", "{}")
    assert refused.returncode != 0 and "no tasks configured" in refused.stderr
