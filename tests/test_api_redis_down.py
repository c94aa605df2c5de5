"""R11 for the API: while Redis is unreachable it answers 503 + Retry-After (never 500), it
starts anyway, and it recovers without a restart when Redis is back. Real ``jobq api``
processes: "starts anyway" is a property of the command as deployed, not of the app alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from api_fixtures import ApiFactory, ApiServer, assert_error, wait_healthy, welcome

from jobq.connection import connect
from jobq.embedded import ServerProcess
from jobq.settings import Settings


@pytest.fixture
def own_redis(redis_server: ServerProcess, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """A Redis of this test alone (it gets stopped and restarted), with an AOF so its data
    survives; every incarnation is stopped at the end."""
    servers = [ServerProcess(redis_server.binary, tmp_path / "own-redis", appendonly=True).start()]
    yield servers
    for server in servers:
        server.stop()


def assert_unavailable(response: httpx.Response) -> None:
    assert_error(response, 503, "redis_unavailable")
    assert int(response.headers["retry-after"]) > 0


def test_api_rides_out_a_redis_outage(
    own_redis: list[ServerProcess], settings: Settings, start_api: Callable[..., ApiServer]
) -> None:
    redis = own_redis[0]
    ours = settings.model_copy(update={"redis_url": redis.url})
    server = start_api(ours)
    http = httpx.Client(base_url=server.url, timeout=10.0)
    created = http.post("/jobs", json=welcome("before"))
    assert created.status_code == 202, created.text
    job_id = created.json()["jobId"]

    redis.stop()
    assert_unavailable(http.post("/jobs", json=welcome("during")))
    assert_unavailable(http.get(f"/jobs/{job_id}/status"))
    assert_unavailable(http.get(f"/jobs/{job_id}"))
    assert_unavailable(http.get("/queues"))
    assert_unavailable(http.get("/dlq"))
    assert_unavailable(http.get("/dlq/email-queue-1"))
    assert_unavailable(http.post("/dlq/email-queue-1/replay"))
    assert_unavailable(http.get("/readyz"))
    assert http.get("/healthz").status_code == 200
    scrape = http.get("/metrics")
    assert scrape.status_code == 200 and "jobq_api_redis_up 0.0" in scrape.text

    # A second API starting while Redis is down must come up too.
    late = start_api(ours)
    assert_unavailable(httpx.post(f"{late.url}/jobs", json=welcome("late"), timeout=10.0))

    own_redis.append(ServerProcess(redis.binary, redis.data_dir, port=redis.port,
                                   appendonly=True).start())
    for url in (server.url, late.url):
        wait_until_ready(url, server)
        assert httpx.get(f"{url}/jobs/{job_id}/status").json()["state"] == "waiting"
        retried = httpx.post(f"{url}/jobs", json=welcome("during"))
        assert retried.status_code in (200, 202), retried.text
    assert http.post("/jobs", json=welcome("late")).status_code == 202
    assert "Traceback" not in server.proc.output() + late.proc.output()
    http.close()


def wait_until_ready(url: str, server: ApiServer) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, server.proc.output()
        time.sleep(0.05)
    wait_healthy(url, server.proc)


# Room for a few hundred jobs above an empty server's own use (about 1 MB).
FULL_AT = "3mb"


async def test_a_full_redis_answers_503_not_500(
    redis_server: ServerProcess, tmp_path: Path, api_app: ApiFactory,
) -> None:
    """Redis at its maxmemory with noeviction (the chart's Valkey) refuses writes with an OOM
    error: enqueue answers 503 + Retry-After, code redis_out_of_memory, and works again once
    there is room."""
    full = ServerProcess(redis_server.binary, tmp_path / "small-redis", extra_args=(
        "--maxmemory", FULL_AT, "--maxmemory-policy", "noeviction")).start()
    try:
        async with api_app(redis_url=full.url) as http:
            answer = None
            for batch in range(100):  # about 1 MB of jobs before it is full: far fewer batches
                jobs = [welcome(f"fill:{batch}:{n}", name="x" * 200) for n in range(100)]
                answer = await http.post("/jobs/batch", json={"jobs": jobs})
                if answer.status_code != 200:
                    break
            assert answer is not None
            assert_error(answer, 503, "redis_out_of_memory")
            # The batch's own request buffer counted in Redis's memory; single jobs fill the rest.
            for n in range(1000):
                answer = await http.post("/jobs", json=welcome(f"fill:{n}", name="x" * 200))
                if answer.status_code != 202:
                    break
            assert_error(answer, 503, "redis_out_of_memory")
            assert int(answer.headers["retry-after"]) > 0
            assert (await http.get("/queues")).status_code == 200  # reads still work
            redis = connect(full.url)
            try:
                await redis.config_set("maxmemory", "0")
            finally:
                await redis.aclose()
            assert (await http.post("/jobs", json=welcome("one-more"))).status_code == 202
    finally:
        full.stop()
