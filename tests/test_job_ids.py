"""Job ids name their queue (one lookup for ``GET /jobs/{id}``, in the queue's slot); ids of the
old format (32 hex characters, no queue) still resolve by asking every queue."""

from __future__ import annotations

import pytest

from jobq import keys
from jobq.client import Client
from jobq.errors import JobExpired, NotFound

WELCOME = {"email": "albert@example.com", "name": "Albert"}
QUEUES = ["email-queue", "a", "x-y.z_1", "a/b c", "~tilde", "ü-queue", "a-" * 40, "-", "."]


@pytest.mark.parametrize("queue", QUEUES)
def test_a_job_id_splits_back_into_its_queue_whatever_the_name(queue: str) -> None:
    job_id = keys.job_id_for(queue, "some key")
    assert keys.queue_of_job_id(job_id) == queue
    assert job_id[:32] == keys.job_id_for("other", "some key")[:32]  # the key's digest
    assert "some key" not in job_id
    assert all(c.isascii() and (c.isalnum() or c in "-_.~") for c in job_id)  # URL-safe


@pytest.mark.parametrize("job_id", [
    "0" * 32, "0" * 32 + "-", "0" * 31 + "-queue", "g" * 32 + "-queue", "0" * 32 + "x-queue",
    "0" * 32 + "-a/b", "0" * 32 + "-~!!", "0" * 32 + "-~YQ==", "",
])
def test_ids_no_jobq_made_name_no_queue(job_id: str) -> None:
    assert keys.queue_of_job_id(job_id) is None


def test_the_same_key_on_two_queues_makes_two_ids() -> None:
    assert keys.job_id_for("email-queue", "k") != keys.job_id_for("report-queue", "k")


async def test_an_old_format_id_is_still_found_by_asking_every_queue(client: Client) -> None:
    """A job stored before ids carried their queue (id = 32 hex): its record is where it was,
    under the queue's job prefix; GET /jobs/{id} finds it, and its old idempotency record still
    tells "expired" from "unknown" once the record is trimmed."""
    made = await client.enqueue("welcome-email", "old", WELCOME)
    q = client.keys("email-queue")
    old_id = made.job_id[:32]
    record = await client.redis.hgetall(q.job(made.job_id))
    await client.redis.hset(q.job(old_id), mapping={**record, "id": old_id})
    found = await client.get_job(old_id)
    assert (found.jobId, found.queue, found.type) == (old_id, "email-queue", "welcome-email")
    await client.redis.delete(q.job(old_id))
    with pytest.raises(NotFound) as unknown:
        await client.get_job(old_id)
    assert not isinstance(unknown.value, JobExpired)
    await client.redis.set(keys.legacy_idempotency_record(client.settings.key_prefix, old_id),
                           "fp", ex=60)
    with pytest.raises(JobExpired):
        await client.get_job(old_id)


async def test_a_new_id_reads_one_queue_and_tells_expired_from_unknown(client: Client) -> None:
    made = await client.enqueue("welcome-email", "trimmed", WELCOME)
    q = client.keys("email-queue")
    await client.redis.delete(q.job(made.job_id))  # as trimming would (R12)
    with pytest.raises(JobExpired):
        await client.get_job(made.job_id)
    with pytest.raises(NotFound):
        await client.get_job(keys.job_id_for("email-queue", "never sent"))
