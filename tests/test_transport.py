"""The round trip every script call makes (jobq.transport): answers in order with error answers
in place, one time bound on the whole exchange, and a connection that stays usable after either."""

from __future__ import annotations

import time

import pytest
from fixtures import single_node_only
from redis.exceptions import ResponseError, TimeoutError

from jobq import transport
from jobq.connection import Redis, connect
from jobq.settings import Settings
from jobq.transport import Transport


async def test_error_answers_come_back_in_place_and_the_connection_stays_in_step(
    redis: Redis, settings: Settings,
) -> None:
    key = f"{settings.key_prefix}:{{t}}:x"
    t = Transport(redis)
    with pytest.raises(ResponseError, match="not an integer"):
        await t.send([("SET", key, "v"), ("INCR", key), ("APPEND", key, "w")], key)
    # Every answer of that call was read, so this one gets its own answers, not leftovers.
    assert await t.send([("GET", key), ("STRLEN", key)], key) == ["vw", 2]


@single_node_only  # pauses the one server; a cluster's calls go through the same _round_trip
async def test_a_round_trip_past_its_bound_raises_timeout_and_the_next_call_answers(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport, "ROUND_TRIP_TIMEOUT_S", 0.3)
    key = f"{settings.key_prefix}:{{t}}:y"
    t = Transport(redis)
    assert await t.send([("SET", key, "1")], key) == ["OK"]
    admin = connect(settings.redis_url)  # its own connection; only writes are paused
    try:
        await admin.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 0\.3s"):
            await t.send([("INCR", key)], key)
        assert time.monotonic() - started < 1.2  # the bound ended it, not the pause
        await admin.execute_command("CLIENT", "UNPAUSE")
    finally:
        await admin.aclose()
    # The timed-out connection was dropped: its INCR's late answer must not be read as this
    # call's (GET would then answer with the INCR's number, not the value INCR left).
    count, value = await t.send([("INCR", key), ("GET", key)], key)
    assert value == str(count)
