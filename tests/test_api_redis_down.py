"""R11 for the API: while Redis is unreachable it answers 503 + Retry-After (never 500), it
starts anyway, and it recovers without a restart when Redis is back. Real ``jobq api``
processes: "starts anyway" is a property of the command as deployed, not of the app alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from api_fixtures import ApiServer, assert_error, wait_healthy, welcome

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
