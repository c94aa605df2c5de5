"""JOBQ_ACK_REPLICAS: a write counts only once that many replicas confirmed it (Redis WAIT on
the write's own connection). On a server with no replica, WAIT 1 times out: the API answers
503 ``not_replicated`` with Retry-After (the job possibly created), and a retry with the same
key is safe; with 0 (the default) nothing waits."""

from __future__ import annotations

import httpx
import pytest
from api_fixtures import ApiFactory, assert_error
from fixtures import ON_CLUSTER

from jobq.client import Client
from jobq.connection import NotReplicated, connect
from jobq.keys import QueueKeys
from jobq.settings import Settings
from jobq.tasks import Registry

WELCOME = {"email": "albert@example.com", "name": "Albert"}
pytestmark = pytest.mark.skipif(
    ON_CLUSTER, reason="needs a server without replicas (WAIT 1 times out); every primary of "
    "the test cluster has one: its acks are tested in tests/test_redis_cluster.py")


def _post(key: str) -> dict[str, object]:
    return {"type": "welcome-email", "idempotencyKey": key, "payload": WELCOME}


async def test_unconfirmed_enqueue_is_503_possibly_created_and_safe_to_retry(
    api_app: ApiFactory, settings: Settings,
) -> None:
    async with api_app(ack_replicas=1, ack_timeout_s=0.05) as http:
        answer = await http.post("/jobs", json=_post("k"))
        error = assert_error(answer, 503, "not_replicated")
        assert int(answer.headers["Retry-After"]) > 0
        assert error["details"][0]["possiblyCreated"] is True
        again = await http.post("/jobs", json=_post("k"))  # the same key: no second job
        assert_error(again, 503, "not_replicated")
    async with api_app() as http:  # acks 0: the job was created once, and is a duplicate now
        repeat = await http.post("/jobs", json=_post("k"))
        assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
        job_id = repeat.json()["jobId"]
        status: httpx.Response = await http.get(f"/jobs/{job_id}/status")
        assert status.json()["state"] == "waiting"


async def test_workers_writes_wait_too_but_an_unconfirmed_end_is_kept(
    settings: Settings, registry: Registry,
) -> None:
    """complete/fail with no replica to confirm: the write stands on the primary (logged,
    not raised: sending it again would be refused as a lost lease)."""
    redis = connect(settings.redis_url)
    try:
        plain = Client(redis, registry, settings)
        made = await plain.enqueue("welcome-email", "w", WELCOME)
        acked = Client(redis, registry, settings.model_copy(
            update={"ack_replicas": 1, "ack_timeout_s": 0.05}))
        q = QueueKeys(settings.key_prefix, "email-queue")
        _, _, (claimed,) = await acked.scripts.claim(q, 1, 30_000, "w1")
        assert await acked.scripts.complete(q, 10, 60_000, [(made.job_id, claimed.token, "{}")]) \
            == [True]
        assert (await plain.get_job(made.job_id)).state == "completed"
        try:
            await acked.enqueue("welcome-email", "w2", WELCOME)
        except NotReplicated as exc:
            assert "0 of 1 replicas" in str(exc)
        else:
            raise AssertionError("an enqueue no replica confirmed must raise NotReplicated")
    finally:
        await redis.aclose()
