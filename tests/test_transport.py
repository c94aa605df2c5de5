"""The round trip every script call makes (jobq.transport): answers in order with error answers
in place, one time bound on the whole exchange, and a connection that stays usable after either."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from fixtures import single_node_only
from redis.asyncio import Redis as SingleRedis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from jobq import transport
from jobq.connection import REDIS_DOWN, Redis, closed_under_us, connect
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


class _ClosesOnConnect:
    """Closes a connection the moment it connects, as a cluster client's topology refresh can
    close one while a command is on its way out during a failover."""

    async def close(self, conn: Any) -> None:
        await conn.disconnect()


@single_node_only  # builds one plain connection; a cluster node's go through the same code
async def test_a_connection_closed_while_connecting_is_an_outage_not_an_attribute_error(
    redis: Redis,
) -> None:
    conn = cast(SingleRedis, redis).connection_pool.make_connection()
    closer = _ClosesOnConnect()  # held here: redis-py keeps connect callbacks as weak refs
    conn.register_connect_callback(closer.close)
    with pytest.raises(REDIS_DOWN, match="closed under a command"):
        await transport._round_trip(conn, transport.pack_command(("PING",)), 1)
    conn.deregister_connect_callback(closer.close)
    # The same connection, connected again and left alone, answers.
    assert await transport._round_trip(conn, transport.pack_command(("PING",)), 1) == ["PONG"]
    await conn.disconnect()


def test_only_a_stream_gone_under_redis_py_reads_as_an_outage() -> None:
    gone = closed_under_us(AttributeError("'NoneType' object has no attribute 'writelines'"))
    assert isinstance(gone, ConnectionError) and "writelines" in str(gone)
    assert closed_under_us(AttributeError("'NoneType' object has no attribute 'read'"))
    assert closed_under_us(AttributeError("'Job' object has no attribute 'write'")) is None
    assert closed_under_us(AttributeError("'NoneType' object has no attribute 'payload'")) is None
