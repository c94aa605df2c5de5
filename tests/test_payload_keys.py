"""R21 and the concurrency wake-up: keys computed from payloads never name jobq's own keys,
scripts check a key's type before they write it, and a woken parked job that will not take
its slot passes the wake on (a review of d0f8ead found each broken; the tests are its
triggers, on the real servers)."""

from __future__ import annotations

import pytest

from jobq.client import Client
from jobq.jobs import State
from jobq.keys import flow_name
from jobq.settings import Settings

LEASE_MS = 30_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": [*settings.tasks, "flowtasks"]})


async def single(client: Client, key: str, tenant: str) -> str:
    return (await client.enqueue("tenant-single", key, {"tenant": tenant})).job_id


def test_flow_names_of_unsafe_keys_hold_no_separator() -> None:
    assert flow_name("key", "t") == "key:t"
    encoded = flow_name("key", "t:parked")
    assert encoded.startswith("key~") and ":" not in encoded.removeprefix("key")
    assert flow_name("key", "t:parked") != flow_name("key", "t_parked")
    assert flow_name("task", "a{b}") != flow_name("key", "a{b}")


async def test_a_tenant_named_like_a_parked_list_loses_no_job(client: Client) -> None:
    """Tenant ``t:parked`` once named tenant ``t``'s parked list: the claim that popped it
    failed with WRONGTYPE after taking the jobs behind it off the wait list."""
    q = client.keys("single-queue")
    a, b = await single(client, "a", "t"), await single(client, "b", "t")
    answer = await client.scripts.claim_answer(q, 2, LEASE_MS, "w1")
    assert [j.job_id for j in answer.jobs] == [a] and answer.held_concurrency == 1
    c, d, e = (await single(client, "c", "t:parked"), await single(client, "d", "u"),
               await single(client, "e", "v"))
    answer = await client.scripts.claim_answer(q, 3, LEASE_MS, "w1")
    assert [j.job_id for j in answer.jobs] == [c, d, e]
    done = await client.scripts.complete(q, 100, 10**9, [(j.job_id, j.token, "{}")
                                                         for j in answer.jobs])
    assert done == [True, True, True]
    assert (await client.get_job(b)).limitedBy == "concurrency"  # still parked behind a


async def test_a_stored_key_of_the_wrong_type_is_checked_before_any_write(
    client: Client,
) -> None:
    """A job stored before flow names were escaped may still carry a concurrency key that
    names another key's parked list: it runs without that limit and ends normally, and the
    list it named is left as it was."""
    q = client.keys("single-queue")
    a, b = await single(client, "a", "t"), await single(client, "b", "t")
    await client.scripts.claim_answer(q, 2, LEASE_MS, "w1")  # leases a, parks b
    parked_list = q.concurrency(flow_name("key", "t")) + ":parked"
    assert await client.redis.type(parked_list) == "list"
    old = await single(client, "old", "x")
    await client.redis.hset(q.job(old), "concKey", parked_list)  # as stored before the fix
    answer = await client.scripts.claim_answer(q, 5, LEASE_MS, "w1")
    assert [j.job_id for j in answer.jobs] == [old]
    job = answer.jobs[0]
    assert await client.scripts.complete(q, 100, 10**9, [(old, job.token, "{}")]) == [True]
    assert (await client.get_job(old)).state is State.COMPLETED
    assert await client.redis.lrange(parked_list, 0, -1) == [b]
    assert a


async def test_a_woken_job_cancelled_before_it_starts_passes_its_slot_on(
    client: Client,
) -> None:
    q = client.keys("single-queue")
    a, b, c = (await single(client, "a", "t"), await single(client, "b", "t"),
               await single(client, "c", "t"))
    first = (await client.scripts.claim_answer(q, 3, LEASE_MS, "w1")).jobs
    assert [j.job_id for j in first] == [a]
    assert await client.scripts.complete(q, 100, 10**9, [(a, first[0].token, "{}")]) == [True]
    assert (await client.get_job(b)).limitedBy is None  # woken for the free slot
    assert await client.scripts.cancel(q, b, 100, 10**9) is True
    answer = await client.scripts.claim_answer(q, 3, LEASE_MS, "w1")
    assert [j.job_id for j in answer.jobs] == [c]


async def test_a_woken_job_held_by_its_rate_limit_passes_its_slot_on(client: Client) -> None:
    """b is woken when a ends, then held by its own rate key (which a used): the slot goes
    to c at once, and cancelling b later strands nobody."""
    q = client.keys("single-queue")

    async def rated(key: str, rate: str) -> str:
        return (await client.enqueue("tenant-single-rated", key,
                                     {"tenant": "t", "rate": rate})).job_id

    a, b, c = await rated("a", "x"), await rated("b", "x"), await rated("c", "y")
    first = (await client.scripts.claim_answer(q, 3, LEASE_MS, "w1")).jobs
    assert [j.job_id for j in first] == [a]
    assert await client.scripts.complete(q, 100, 10**9, [(a, first[0].token, "{}")]) == [True]
    answer = await client.scripts.claim_answer(q, 3, LEASE_MS, "w1")
    assert answer.held_rate == 1 and [j.job_id for j in answer.jobs] == [c]
    assert (await client.get_job(b)).limitedBy == "rate"
    assert await client.scripts.cancel(q, b, 100, 10**9) is True
    counts = (await client.counts())["single-queue"]
    assert (counts["limited"], counts["active"]) == (0, 1)
