"""R22: every script call is safe to execute twice. A call re-sent after a timeout or a
dropped connection may run after its first copy did; the second execution must answer what
the first did and change nothing more. Each script is run twice with the same arguments, as
a re-send carries them. (A stalled server does not reliably run the first copy: a copy whose
connection the client reset is dropped unread, so the re-send is tested where it matters,
at the second execution.)"""

from __future__ import annotations

from typing import Any

from jobq.client import Client
from jobq.jobs import State
from jobq.keys import QueueKeys

WELCOME = {"email": "albert@example.com", "name": "Albert"}
LEASE_MS = 30_000


async def enqueue(client: Client, key: str, attempts: int = 3) -> str:
    return (await client.enqueue("welcome-email", key, WELCOME, attempts=attempts)).job_id


def claim_call(client: Client, q: QueueKeys, caller: str, most: int = 1
               ) -> tuple[str, list[str], list[Any]]:
    """A claim's record key, KEYS and ARGV, as Scripts.claim_answer sends them."""
    record, seq, answered = client.scripts._call_record(q, caller)
    keys = [q.wait, q.active, q.delayed, q.job_prefix, q.paused, q.events, record]
    return record, keys, [most, LEASE_MS, "w1", 0, 0, seq, answered]


async def test_a_claim_run_twice_answers_the_same_jobs_and_leases_no_more(
    client: Client,
) -> None:
    ids = [await enqueue(client, f"c{i}") for i in range(3)]
    q = client.keys("email-queue")
    _, keys, args = claim_call(client, q, "lane")
    first = await client.scripts._call("claim", keys, args)
    second = await client.scripts._call("claim", keys, args)
    assert first[5:] == second[5:] and first[5] == ids[0]
    assert await client.redis.zcard(q.active) == 1


async def test_the_jobs_of_a_claim_answer_never_received_go_back_in_line(
    client: Client,
) -> None:
    """The transport gave up on a claim whose first copy ran: the caller's next claim hands
    those jobs back (attempt not spent) before it leases, so none waits for its lease to
    expire and be counted lost."""
    job_id = await enqueue(client, "unheard", attempts=1)
    q = client.keys("email-queue")
    _, keys, args = claim_call(client, q, "lane")
    await client.scripts._call("claim", keys, args)  # its answer is "lost"
    answer = await client.scripts.claim_answer(q, 1, LEASE_MS, "w1", caller="lane")
    assert [(j.job_id, j.attempt) for j in answer.jobs] == [(job_id, 1)]
    job = await client.get_job(job_id)
    assert job.attempts == 1 and job.state is State.ACTIVE
    assert await client.redis.zcard(q.active) == 1


async def test_complete_claim_run_twice_answers_alike(client: Client) -> None:
    first, second = await enqueue(client, "cc-1"), await enqueue(client, "cc-2")
    q = client.keys("email-queue")
    c = (await client.scripts.claim_answer(q, 1, LEASE_MS, "w1", caller="lane")).jobs[0]
    record, seq, answered = client.scripts._call_record(q, "lane")
    keys = [q.wait, q.active, q.delayed, q.job_prefix, q.paused, q.events, q.completed,
            q.throughput_prefix, record]
    args = [1, LEASE_MS, "w1", 0, 0, 10, 60_000, seq, answered, first, c.token, "{}"]
    one = await client.scripts._call("complete_claim", keys, args)
    two = await client.scripts._call("complete_claim", keys, args)
    assert one == two and one[:2] == [1, 1] and one[7] == second
    assert (await client.counts())["email-queue"]["completed"] == 1


async def test_creating_calls_run_twice_answer_created_both_times(client: Client) -> None:
    q = client.keys("email-queue")
    from jobq.scripts import NewJob
    job = NewJob("welcome-email", "email-queue", '{"email":"a@b.c","name":"A"}', "k", 3,
                 '{"type":"fixed","delay_s":1}', None)
    job_id = "0" * 32 + "-email-queue"
    fp = "fingerprint-of-the-content"
    keys = [q.idempotency(job_id), q.job(job_id), q.wait, q.delayed]
    args = [job_id, fp, 60, 0, *job.args(), "nonce-1"]
    assert await client.scripts._call("enqueue", keys, args) == 0
    assert await client.scripts._call("enqueue", keys, args) == 0  # the same call: created
    args[-1] = "nonce-2"
    assert await client.scripts._call("enqueue", keys, args) == 1  # another call: duplicate
    batch_keys = [q.wait, q.delayed, q.idempotency(job_id + "b"), q.job(job_id + "b"),
                  q.idempotency(job_id + "b"), q.job(job_id + "b")]
    batch_args = [60, "nonce-3", job_id + "b", fp, 0, *job.args(), job_id + "b", fp, 0,
                  *job.args()]
    assert await client.scripts._call("enqueue_batch", batch_keys, batch_args) == [0, 1]
    assert await client.scripts._call("enqueue_batch", batch_keys, batch_args) == [0, 1]
    assert await client.redis.llen(q.wait) == 2


async def test_cancel_and_discard_run_twice_answer_done_both_times(client: Client) -> None:
    q = client.keys("email-queue")
    waiting = await enqueue(client, "w")
    keys = [q.job(waiting), q.wait, q.delayed, q.cancelled, q.job_prefix, q.cancels, q.events]
    assert await client.scripts._call("cancel", keys, [waiting, 10, 60_000, "n1"]) == 1
    assert await client.scripts._call("cancel", keys, [waiting, 10, 60_000, "n1"]) == 1
    assert await client.scripts._call("cancel", keys, [waiting, 10, 60_000, "n2"]) == -5

    dead = await enqueue(client, "d", attempts=1)
    c = (await client.scripts.claim_answer(q, 1, LEASE_MS, "w1")).jobs[0]
    dlq_id = (await client.scripts.fail(q, dead, c.token, "x", 0, permanent=True,
                                        outcome="failed", keep=10, max_age_ms=60_000)).dlq_id
    assert dlq_id
    dkeys = [q.dlq, q.dlq_entry(dlq_id), q.dlq_replays(dlq_id), q.dlq_tombstone(dlq_id)]
    assert await client.scripts._call("discard", dkeys, [dlq_id, "n3", 60]) == 1
    assert await client.scripts._call("discard", dkeys, [dlq_id, "n3", 60]) == 1
    assert await client.scripts._call("discard", dkeys, [dlq_id, "n4", 60]) == -3


async def test_finishing_calls_run_twice_change_nothing_more(client: Client) -> None:
    q = client.keys("email-queue")
    a, b = await enqueue(client, "a"), await enqueue(client, "b")
    jobs = (await client.scripts.claim_answer(q, 2, LEASE_MS, "w1")).jobs
    ca, cb = (j for j in sorted(jobs, key=lambda j: j.job_id != a))
    for _ in range(2):
        assert await client.scripts.handback(q, [(a, ca.token)]) in (1, 0)
    job = await client.get_job(a)
    assert (job.attempts, job.state) == (0, State.WAITING)  # not restored twice
    assert await client.scripts.cancel(q, b, 10, 60_000) is False
    for _ in range(2):
        await client.scripts.end_cancelled(q, b, cb.token, 10, 60_000)  # no LeaseLost
    assert (await client.get_job(b)).state is State.CANCELLED


async def test_reserve_run_twice_lets_the_effect_run_once(client: Client) -> None:
    job_id = await enqueue(client, "fx")
    q = client.keys("email-queue")
    c = (await client.scripts.claim_answer(q, 1, LEASE_MS, "w1")).jobs[0]
    keys = [q.job(job_id), q.side_effect(job_id, "send")]
    assert await client.scripts._call("reserve", keys, [c.token, 60, "n1"]) == 1
    assert await client.scripts._call("reserve", keys, [c.token, 60, "n1"]) == 1  # re-send
    assert await client.scripts._call("reserve", keys, [c.token, 60, "n2"]) == 0  # another


async def test_a_reclaim_run_twice_takes_nothing_more(client: Client) -> None:
    q = client.keys("email-queue")
    ids = [await enqueue(client, f"r{i}") for i in range(2)]
    await client.scripts.claim_answer(q, 2, LEASE_MS, "dead")
    await client.redis.zadd(q.active, dict.fromkeys(ids, 0), xx=True)  # their leases ran out
    record, seq, answered = client.scripts._call_record(q, "sweeper:sweep")
    keys, args = [q.active, q.job_prefix, record], [LEASE_MS, "sweeper", 1, seq, answered]
    one = await client.scripts._call("reclaim", keys, args)
    assert await client.scripts._call("reclaim", keys, args) == one and one[0] in ids
    # The sweeper never heard of that answer: its next call answers that job again.
    again = await client.scripts.reclaim(q, LEASE_MS, "sweeper", 10)
    assert sorted(t.job_id for t in again) == sorted(ids)
    assert next(t.token for t in again if t.job_id == one[0]) == one[1]


def test_the_call_record_lifetime_is_the_documented_one() -> None:
    from jobq.keys import CALL_RECORD_TTL_MS
    from jobq.scripts import lua_file
    assert f"local CALL_RECORD_TTL_MS = {CALL_RECORD_TTL_MS}  " in lua_file("lib/calls.lua")


async def test_a_claim_that_leased_nothing_leaves_no_record(client: Client) -> None:
    q = client.keys("email-queue")
    await enqueue(client, "one")
    record, _, _ = client.scripts._call_record(q, "idle")
    assert (await client.scripts.claim_answer(q, 1, LEASE_MS, "w1", caller="idle")).jobs
    assert await client.redis.exists(record) == 1
    assert not (await client.scripts.claim_answer(q, 1, LEASE_MS, "w1", caller="idle")).jobs
    assert await client.redis.exists(record) == 0
