"""Every Lua script through its wrapper, every error code included, against a real server."""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources

import pytest
from redis.asyncio import Redis

from jobq import keys, scripts
from jobq.client import Client
from jobq.errors import IdempotencyConflict, JobqError, LeaseLost, NotFound
from jobq.jobs import State, status_of
from jobq.scripts import (
    SCRIPT_NAMES,
    NewJob,
    Scripts,
    header_key_count,
    inline_includes,
    lua_file,
    script_source,
)

WELCOME = {"email": "albert@example.com", "name": "Albert"}


def test_every_header_declares_the_keys_its_body_uses() -> None:
    for name in SCRIPT_NAMES:
        source = script_source(name)
        header, body = source.split("]]", 1)
        used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)}
        declared = header_key_count(source)
        assert declared >= 1, name
        assert used == set(range(1, declared + 1)), f"{name}: header {declared}, body {used}"
        assert "ARGV[" in header, f"{name}: header lists no ARGV"


def _pieces() -> dict[str, str]:
    folder = resources.files("jobq").joinpath("lua/lib")
    return {f"lib/{f.name}": f.read_text() for f in folder.iterdir() if f.name.endswith(".lua")}


def test_pieces_take_their_keys_as_arguments() -> None:
    """Only a script's own header says which keys it touches: pieces never read KEYS or ARGV."""
    pieces = _pieces()
    assert {"lib/clock.lua", "lib/codes.lua", "lib/idempotency.lua", "lib/new_job.lua",
            "lib/attempt.lua", "lib/trim.lua"} <= set(pieces)
    for path, text in pieces.items():
        assert "KEYS[" not in text and "ARGV[" not in text, path


def test_lua_answer_codes_are_the_python_ones() -> None:
    codes = dict(re.findall(r"^local ([A-Z_]+) = (-?\d+)", lua_file("lib/codes.lua"), re.M))
    assert len(codes) >= 7
    for name, value in codes.items():
        assert getattr(scripts, name) == int(value), name


def test_enqueue_and_replay_share_the_idempotency_check_and_the_job_they_store() -> None:
    for name in ("enqueue", "replay"):
        own = lua_file(f"{name}.lua")
        assert '--- @include "lib/idempotency"' in own and '--- @include "lib/new_job"' in own
        assert 'rcall("GET"' not in own and 'rcall("SET"' not in own, name  # no private copy
    for name in SCRIPT_NAMES:
        assert 'rcall("TIME")' not in lua_file(f"{name}.lua"), name  # one clock prelude


def test_includes_inline_each_piece_once_where_first_named() -> None:
    files = {
        "s.lua": '--[[ header ]]\n--- @include "lib/b"\n--- @include "lib/a"\nbody()\n',
        "lib/a.lua": "local A = 1\n",
        "lib/b.lua": '--- @include "lib/a"\nlocal B = A + 1',
    }
    assert inline_includes("s.lua", files.__getitem__) == (
        "--[[ header ]]\nlocal A = 1\nlocal B = A + 1\nbody()\n")
    files["s.lua"] = "--- @include lib/a\n"
    with pytest.raises(JobqError, match="malformed include"):
        inline_includes("s.lua", files.__getitem__)
    for name in SCRIPT_NAMES:  # every real include resolves
        assert "@include" not in script_source(name)


async def test_every_script_answers_a_lost_lease_with_one_code(client: Client) -> None:
    job_id = await enqueue(client, "lost")
    await claim_one(client)
    q = client.keys("email-queue")
    call = client.scripts._call
    assert await call("renew", [q.active, q.job_prefix], [60_000, job_id, "stale"]) == [
        scripts.LEASE_LOST]
    assert await call("complete", [q.active, q.completed, q.job_prefix, q.throughput_prefix,
                                   q.events],
                      [10, 60_000, job_id, "stale", "{}"]) == [scripts.LEASE_LOST]
    assert await call("fail", [q.active, q.delayed, q.failed, q.dlq, q.dlq_seq, q.job_prefix,
                               q.dlq_prefix, q.throughput_prefix, q.events, q.cancelled],
                      [job_id, "stale", "x", 0, 0, "failed", q.queue, 10, 60_000, 0]
                      ) == scripts.LEASE_LOST
    assert await call("reserve", [q.job(job_id), q.side_effect(job_id, "fx")],
                      ["stale", 60, "nonce"]) == scripts.LEASE_LOST
    assert await call("progress", [q.job(job_id), q.events],
                      [job_id, "stale", 0.5, ""]) == scripts.LEASE_LOST


async def test_job_events_are_written_only_while_someone_keeps_the_stream(
    client: Client,
) -> None:
    job_id = await enqueue(client, "events")
    q = client.keys("email-queue")
    c = await claim_one(client)
    assert await client.redis.exists(q.events) == 0  # nobody watches: the claim wrote nothing
    await client.redis.xadd(q.events, {"e": "watch", "ids": "[]"})  # what a reader does
    await client.scripts.progress(q, job_id, c.token, 0.5, "half")
    with pytest.raises(LeaseLost):
        await client.scripts.progress(q, job_id, "stale", 0.7, "")
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, c.token, "{}")]) == [True]
    entries = [(f["e"], json.loads(f["ids"])) for _, f in await client.redis.xrange(q.events)]
    assert entries == [("watch", []), ("progress", [job_id]), ("completed", [job_id])]
    progress = (await client.get_job(job_id)).progress
    assert progress is not None and (progress.fraction, progress.message) == (0.5, "half")


def test_the_event_stream_cap_is_the_documented_one() -> None:
    assert f"local EVENTS_MAXLEN = {keys.EVENTS_MAXLEN}\n" in lua_file("lib/events.lua")


async def test_wrappers_pass_as_many_keys_as_headers_declare(redis: Redis) -> None:
    """A wrapper passing a different key count is refused before Redis sees it."""
    scripts = Scripts(redis)
    with pytest.raises(Exception, match="header declares"):
        await scripts._call("renew", ["only-one"], [0])


async def enqueue(client: Client, key: str, payload: dict[str, object] | None = None) -> str:
    result = await client.enqueue("welcome-email", key, payload or WELCOME)
    return result.job_id


async def claim_one(client: Client, queue: str = "email-queue", worker: str = "w1",
                    lease_ms: int = 30_000):  # type: ignore[no-untyped-def]
    _, _, jobs = await client.scripts.claim(client.keys(queue), 1, lease_ms, worker)
    assert len(jobs) == 1
    return jobs[0]


async def test_enqueue_creates_once_and_refuses_other_content(client: Client) -> None:
    first = await client.enqueue("welcome-email", "k1", WELCOME)
    again = await client.enqueue("welcome-email", "k1", dict(reversed(WELCOME.items())))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert first.job_id == again.job_id == keys.job_id_for("email-queue", "k1")
    assert "k1" not in first.job_id
    with pytest.raises(IdempotencyConflict):
        await client.enqueue("welcome-email", "k1", {**WELCOME, "name": "Other"})
    with pytest.raises(IdempotencyConflict):  # another type on the same queue
        await client.enqueue("effect-then-hang", "k1", {"seconds": 1})
    # Idempotency is per queue: the same key on another queue is another job.
    elsewhere = await client.enqueue("flaky", "k1", {})
    assert not elsewhere.duplicate and elsewhere.job_id != first.job_id
    assert keys.queue_of_job_id(elsewhere.job_id) == "report-queue"
    job = await client.get_job(first.job_id)
    assert job.state is State.WAITING and job.attempts == 0 and job.maxAttempts == 3


async def test_claim_leases_with_a_token_and_promotes_due_delayed_jobs(client: Client) -> None:
    late = await client.enqueue("welcome-email", "later", WELCOME, delay_s=60)
    soon = await client.enqueue("welcome-email", "soon", WELCOME, delay_s=0.05)
    q = client.keys("email-queue")
    now, next_due, jobs = await client.scripts.claim(q, 10, 30_000, "w1")
    assert jobs == [] and next_due is not None and now < next_due <= now + 100
    await asyncio.sleep(0.06)  # the delay itself is what is under test
    now, next_due, jobs = await client.scripts.claim(q, 10, 30_000, "w1")
    assert [j.job_id for j in jobs] == [soon.job_id]
    assert jobs[0].token == "w1:1" and jobs[0].attempt == 1
    assert next_due is not None and next_due > now + 50_000
    assert (await client.get_job(late.job_id)).state is State.DELAYED
    assert (await client.get_job(soon.job_id)).state is State.ACTIVE


async def test_renew_and_complete_are_fenced_by_the_token(client: Client) -> None:
    job_id = await enqueue(client, "fenced")
    c = await claim_one(client)
    q = client.keys("email-queue")
    assert await client.scripts.renew(q, 60_000, [(job_id, c.token),
                                                              (job_id, "stale")]) == [1, -1]
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, "stale", "1")]) == [
        False]
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, c.token, '{"a":1}')]
                                         ) == [True]
    job = await client.get_job(job_id)
    assert job.state is State.COMPLETED and job.result == {"a": 1}
    assert [h.outcome for h in job.history] == ["completed"]
    # The same completion again (a re-sent call, R22) answers as the first did and changes
    # nothing: the lease ended with the first.
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, c.token, "2")]) == [True]
    job = await client.get_job(job_id)
    assert job.result == {"a": 1} and [h.outcome for h in job.history] == ["completed"]


async def test_complete_claim_completes_fenced_then_leases_and_completes_even_while_paused(
    client: Client,
) -> None:
    """The worker's one call per job: completions written (fenced), then a claim as ``claim``
    makes it; on a paused queue the completions stand and nothing is leased."""
    first, second = await enqueue(client, "cc-1"), await enqueue(client, "cc-2")
    q = client.keys("email-queue")
    c = await claim_one(client)
    assert c.job_id == first
    done, answer = await client.scripts.complete_and_claim(
        q, 10, 60_000, [(first, "stale", "1"), (first, c.token, '{"n":1}')], 5, 30_000, "w1")
    assert done == [False, True]
    assert answer is not None and [(j.job_id, j.token) for j in answer.jobs] == [(second, "w1:1")]
    assert (await client.get_job(first)).state is State.COMPLETED
    assert (await client.get_job(second)).state is State.ACTIVE
    await client.redis.set(q.paused, "1")
    third = await enqueue(client, "cc-3")
    done, answer = await client.scripts.complete_and_claim(
        q, 10, 60_000, [(second, "w1:1", "{}")], 5, 30_000, "w1")
    assert (done, answer) == ([True], None)
    assert (await client.get_job(second)).state is State.COMPLETED
    assert (await client.get_job(third)).state is State.WAITING


async def test_fail_retries_then_dead_letters_exactly_once(client: Client) -> None:
    job_id = (await client.enqueue("welcome-email", "f", WELCOME, attempts=2)).job_id
    q = client.keys("email-queue")
    c = await claim_one(client)
    with pytest.raises(LeaseLost):
        await client.scripts.fail(q, job_id, "stale", "boom", 0, permanent=False,
                                  outcome="failed", keep=10, max_age_ms=60_000)
    r1 = await client.scripts.fail(q, job_id, c.token, "boom 1", 0, permanent=False,
                                   outcome="failed", keep=10, max_age_ms=60_000)
    assert r1.retry_at_ms is not None and r1.dlq_id is None
    c2 = await claim_one(client)
    assert c2.attempt == 2
    r2 = await client.scripts.fail(q, job_id, c2.token, "boom 2", 0, permanent=False,
                                   outcome="failed", keep=10, max_age_ms=60_000)
    assert r2.dlq_id == "email-queue-1"
    # The same call again (a re-send, R22) answers as the first did: no second DLQ entry.
    again = await client.scripts.fail(q, job_id, c2.token, "boom 3", 0, permanent=False,
                                      outcome="failed", keep=10, max_age_ms=60_000)
    assert again == r2
    entry = await client.get_dlq_entry("email-queue-1")
    assert (entry.originalJobId, entry.attempts, entry.failedReason) == (job_id, 2, "boom 2")
    assert (await client.counts())["email-queue"]["dlq"] == 1


async def test_permanent_failure_skips_remaining_attempts(client: Client) -> None:
    job_id = await enqueue(client, "perm")
    c = await claim_one(client)
    r = await client.scripts.fail(client.keys("email-queue"), job_id, c.token, "no",
                                  0, permanent=True, outcome="failed", keep=10,
                                  max_age_ms=60_000)
    assert r.dlq_id is not None
    assert (await client.get_job(job_id)).state is State.FAILED


async def test_reclaim_takes_expired_leases_only(client: Client) -> None:
    expired = await enqueue(client, "expired")
    await claim_one(client, lease_ms=1)
    fresh = await enqueue(client, "fresh")
    await claim_one(client, lease_ms=60_000)
    await asyncio.sleep(0.01)  # let the 1 ms lease run out
    q = client.keys("email-queue")
    taken = await client.scripts.reclaim(q, 30_000, "sweeper", 10)
    assert [t.job_id for t in taken] == [expired] and taken[0].previous_worker == "w1"
    assert fresh not in [t.job_id for t in taken]
    assert await client.scripts.reclaim(q, 30_000, "sweeper", 10) == []
    r = await client.scripts.fail(q, expired, taken[0].token, "worker lost", 0,
                                  permanent=False, outcome="lost", keep=10, max_age_ms=60_000)
    assert r.retry_at_ms is not None
    job = await client.get_job(expired)
    assert job.history[0].outcome == "lost"


async def test_handback_returns_job_first_in_line_without_spending_an_attempt(
    client: Client,
) -> None:
    first = await enqueue(client, "a")
    await enqueue(client, "b")
    c = await claim_one(client)
    q = client.keys("email-queue")
    assert await client.scripts.handback(q, [(first, "stale")]) == 0
    assert await client.scripts.handback(q, [(first, c.token)]) == 1
    job = await client.get_job(first)
    assert job.state is State.WAITING and job.attempts == 0
    # The hand-back shows in the history, its attempt number free for the next run.
    [handed] = job.history
    assert (handed.attempt, handed.worker, handed.outcome, handed.handedBack) == (
        1, "w1", "handed-back", True)
    assert handed.finishedAt is not None and handed.startedAt is not None
    again = await claim_one(client, worker="w2")
    assert again.job_id == first and again.attempt == 1
    assert await client.scripts.complete(q, 10, 60_000, [(first, again.token, "1")]) == [True]
    job = await client.get_job(first)
    assert job.attempts == 1 and job.state is State.COMPLETED
    assert [(h.attempt, h.worker, h.outcome) for h in job.history] == [
        (1, "w1", "handed-back"), (1, "w2", "completed")]


async def test_handback_of_a_job_asked_to_cancel_ends_it_cancelled(client: Client) -> None:
    """A worker shutting down before its lease renewal told it of the cancel: the job ends
    ``cancelled`` (terminal, its attempt ended as such) instead of waiting to run again."""
    job_id = await enqueue(client, "cancel-then-shutdown")
    c = await claim_one(client)
    q = client.keys("email-queue")
    assert await client.scripts.cancel(q, job_id, 10, 60_000) is False  # running: requested
    assert await client.scripts.handback(q, [(job_id, c.token)]) == 1
    job = await client.get_job(job_id)
    assert (job.state, job.attempts, job.finishedAt is not None) == (State.CANCELLED, 1, True)
    assert [(h.outcome, h.handedBack) for h in job.history] == [("cancelled", False)]
    counts = (await client.counts())["email-queue"]
    assert (counts["cancelled"], counts["waiting"], counts["active"]) == (1, 0, 0)
    _, _, jobs = await client.scripts.claim(q, 10, 30_000, "w2")
    assert jobs == []


async def test_reserve_side_effect_once_per_job(client: Client) -> None:
    job_id = await enqueue(client, "fx")
    c = await claim_one(client)
    q = client.keys("email-queue")
    assert await client.scripts.reserve(q, job_id, "send", c.token, 60) is True
    assert await client.scripts.reserve(q, job_id, "send", c.token, 60) is False
    assert await client.scripts.reserve(q, job_id, "other", c.token, 60) is True
    with pytest.raises(LeaseLost):
        await client.scripts.reserve(q, job_id, "third", "stale", 60)


async def test_replay_makes_a_new_job_and_leaves_the_entry(client: Client) -> None:
    job_id = (await client.enqueue("welcome-email", "r", WELCOME, attempts=1)).job_id
    c = await claim_one(client)
    r = await client.scripts.fail(client.keys("email-queue"), job_id, c.token, "x", 0,
                                  permanent=False, outcome="failed", keep=10, max_age_ms=60_000)
    assert r.dlq_id
    before = await client.get_dlq_entry(r.dlq_id)
    one = await client.replay(r.dlq_id, "click-1")
    same = await client.replay(r.dlq_id, "click-1")
    other = await client.replay(r.dlq_id)
    assert one.job_id == same.job_id and same.duplicate and not one.duplicate
    assert other.job_id not in (one.job_id, job_id)
    replayed = await client.get_job(one.job_id)
    assert (replayed.replayedFromJobId, replayed.dlqId, replayed.state) == (
        job_id, r.dlq_id, State.WAITING)
    after = await client.get_dlq_entry(r.dlq_id)
    assert after.model_dump(exclude={"replays"}) == before.model_dump(exclude={"replays"})
    assert {x.jobId for x in after.replays} == {one.job_id, other.job_id}
    with pytest.raises(NotFound):
        await client.replay("email-queue-999")
    with pytest.raises(IdempotencyConflict):
        await client.scripts.replay(client.keys("email-queue"), r.dlq_id,
                                    client.keys("email-queue").idempotency(one.job_id),
                                    one.job_id, "other-fingerprint", 60,
                                    NewJob("flaky", "email-queue", "{}", "k", 1, "{}", None), "x")


async def test_dlq_entries_past_their_retention_go_when_the_next_job_fails(
    client: Client,
) -> None:
    q = client.keys("email-queue")
    first = (await client.enqueue("welcome-email", "old", WELCOME, attempts=1)).job_id
    c = await claim_one(client)
    old = await client.scripts.fail(q, first, c.token, "x", 0, permanent=False,
                                    outcome="failed", keep=10, max_age_ms=60_000)
    assert old.dlq_id
    await client.replay(old.dlq_id)
    await asyncio.sleep(0.01)  # the entry's age is what is under test
    second = (await client.enqueue("welcome-email", "new", WELCOME, attempts=1)).job_id
    c2 = next(j for j in (await client.scripts.claim(q, 10, 30_000, "w1"))[2]
              if j.job_id == second)
    new = await client.scripts.fail(q, second, c2.token, "y", 0, permanent=False,
                                    outcome="failed", keep=10, max_age_ms=60_000,
                                    dlq_max_age_ms=5)
    with pytest.raises(NotFound):
        await client.get_dlq_entry(old.dlq_id)
    assert not await client.redis.exists(q.dlq_replays(old.dlq_id))
    assert new.dlq_id and (await client.get_dlq_entry(new.dlq_id)).originalJobId == second


async def test_a_job_completed_after_a_failed_attempt_shows_no_failed_reason(
    client: Client,
) -> None:
    """The status of a success says failedReason null; the earlier error stays in history."""
    job_id = (await client.enqueue("welcome-email", "retried", WELCOME, attempts=2)).job_id
    q = client.keys("email-queue")
    first = await claim_one(client)
    retry = await client.scripts.fail(q, job_id, first.token, "boom 1", 0, permanent=False,
                                      outcome="failed", keep=10, max_age_ms=60_000)
    assert retry.retry_at_ms is not None
    assert (await client.get_job(job_id)).failedReason == "boom 1"  # shown while it retries
    second = await claim_one(client)
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, second.token, "{}")]) == [True]
    job = await client.get_job(job_id)
    assert status_of(job).failedReason is None and job.failedReason is None
    assert [(h.outcome, h.error) for h in job.history] == [("failed", "boom 1"),
                                                           ("completed", None)]


async def test_scripts_load_again_after_redis_forgot_them(client: Client, redis: Redis) -> None:
    """NOSCRIPT (Redis restarted or flushed its script cache) reloads and retries, also when
    the script's answer follows the known-queues command sent ahead of it."""
    await client.scripts.load()
    await redis.script_flush()
    created = await client.enqueue("welcome-email", "after-flush", WELCOME)
    assert not created.duplicate
    assert "email-queue" in await redis.smembers(keys.known_queues(client.settings.key_prefix))
    await redis.script_flush()
    assert (await client.enqueue("welcome-email", "after-flush", WELCOME)).duplicate


async def test_throughput_reads_the_window_oldest_first_on_redis_clock(
    client: Client, redis: Redis
) -> None:
    """One call answers Redis's clock and every minute of the window; minutes without a hash
    (and fields never counted) read 0; a minute just before the window is left out."""
    for attempt in range(3):  # a fresh queue each time the minute turns between two reads
        q = client.keys(f"tp-queue-{attempt}")
        seconds, _ = await redis.time()
        this_minute = int(seconds) // 60
        await redis.hset(q.throughput(this_minute), mapping={"completed": 5, "failed": 1})
        await redis.hset(q.throughput(this_minute - 2), mapping={"completed": 3})
        await redis.hset(q.throughput(this_minute - 3), mapping={"failed": 9})  # outside
        now, completed, failed = await client.scripts.throughput(q, 3)
        if now // 60_000 == this_minute:
            break
    assert (completed, failed) == ([3, 0, 5], [0, 0, 1])
    assert int(seconds) * 1000 <= now


async def test_hand_backs_past_the_limit_spend_the_attempt_then_dead_letter(
    client: Client,
) -> None:
    """A job longer than the shutdown grace, interrupted at every deploy, would be handed back
    for ever: past ``free_handbacks`` a hand-back spends the attempt, and the last one
    dead-letters the job."""
    job_id = (await client.enqueue("welcome-email", "hb", WELCOME, attempts=2)).job_id
    q = client.keys("email-queue")
    for _ in range(2):  # free
        c = await claim_one(client)
        assert await client.scripts.handback(q, [(job_id, c.token)], free_handbacks=2) == 1
        assert (await client.get_job(job_id)).attempts == 0
    c = await claim_one(client)
    assert await client.scripts.handback(q, [(job_id, c.token)], free_handbacks=2) == 1
    job = await client.get_job(job_id)
    assert (job.state, job.attempts) == (State.WAITING, 1)
    assert job.history[-1].outcome == "interrupted"
    c = await claim_one(client)
    assert c.attempt == 2
    assert await client.scripts.handback(q, [(job_id, c.token)], free_handbacks=2) == 1
    job = await client.get_job(job_id)
    assert job.state is State.FAILED and job.deadLetterId
    entry = await client.get_dlq_entry(job.deadLetterId)
    assert entry.attempts == 2 and "interrupted" in entry.failedReason


async def test_a_reservation_of_an_earlier_job_under_the_same_id_is_not_this_jobs(
    client: Client,
) -> None:
    """A job re-created under the same key after its idempotency record expired and its
    record was trimmed is a new job: its side effects run, although the reservation of the
    earlier job (kept from its run time) is still there."""
    job_id = await enqueue(client, "again")
    q = client.keys("email-queue")
    c = await claim_one(client)
    assert await client.scripts.reserve(q, job_id, "send", c.token, 3600) is True
    assert await client.scripts.complete(q, 10, 60_000, [(job_id, c.token, "{}")]) == [True]
    await client.redis.delete(q.idempotency(job_id), q.job(job_id))  # expired, trimmed
    assert await enqueue(client, "again") == job_id
    c = await claim_one(client)
    assert await client.scripts.reserve(q, job_id, "send", c.token, 3600) is True
    assert await client.scripts.reserve(q, job_id, "send", c.token, 3600) is False
