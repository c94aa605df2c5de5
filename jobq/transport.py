"""One round trip carrying a script call (and its WAIT): on one server through a kept pooled
connection, on a cluster to the primary of the call's slot, following MOVED and ASK.

Every job passes through here several times, so commands are packed by hiredis, written on one
connection and their answers read straight from its parser (``_round_trip``), under one time
bound for the whole round trip; redis-py's generic command path costs about twice as much CPU
per call.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from typing import Any, cast

from hiredis import pack_command
from redis.asyncio import Redis as SingleRedis
from redis.asyncio import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MasterDownError,
    MaxConnectionsError,
    MovedError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from jobq.connection import Redis, closed_under_us

KEEP_IDLE = 2  # connections a Transport keeps between calls instead of returning to the pool
CLUSTER_TRIES = 4  # sends of one call on a cluster: MOVED, ASK, a failover's first moments
CLUSTER_POOL_WAIT_S = 5.0  # longest wait for a free connection to a cluster node
CLUSTER_RETRY_S = 0.1  # pause before sending again after CLUSTERDOWN / TRYAGAIN / a lost node
ROUND_TRIP_TIMEOUT_S = 5.0  # longest one round trip may take (as jobq.connection.SOCKET_TIMEOUT_S)


class Transport:
    """Sends pipelined commands in one round trip on one connection of ``redis``."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self._idle: list[Any] = []  # connections kept between calls (see _send_single)

    async def send(self, commands: list[tuple[Any, ...]], key: str) -> list[Any]:
        """One round trip on one connection (to the primary holding ``key`` on a cluster);
        every command's answer, or the first error answer raised."""
        packed = b"".join(pack_command(command) for command in commands)
        if self.cluster:
            return await self._send_cluster(packed, len(commands), key)
        return await self._send_single(packed, len(commands))

    async def _send_single(self, packed: bytes, count: int) -> list[Any]:
        """One round trip on a pooled connection, packed by hiredis.

        Every job passes through here several times; redis-py's generic command path costs
        about twice as much CPU per call, which caps a single producer's enqueue rate. For the
        same reason the last ``KEEP_IDLE`` connections this object used stay with it between
        calls instead of going back through the pool (its lock and per-checkout socket check
        cost as much as packing and parsing); they are closed with the client's pool.
        """
        # The type is known from __init__: isinstance on RedisCluster (a Protocol's subclass)
        # costs more than a microsecond, on every call.
        pool = cast(SingleRedis, self.redis).connection_pool
        for attempt in (1, 2):
            conn = (self._idle.pop() if self._idle
                    else await pool.get_connection())  # type: ignore[no-untyped-call]
            try:
                answers = await _round_trip(conn, packed, count)
            except (ConnectionError, TimeoutError):
                await conn.disconnect()
                await pool.release(conn)
                if attempt == 2:
                    raise
                continue  # a connection gone stale (Redis restarted): one fresh try
            except BaseException:
                await conn.disconnect()  # its state is unknown (cancelled mid-reply)
                await pool.release(conn)
                raise
            if len(self._idle) < KEEP_IDLE:
                self._idle.append(conn)
            else:
                await pool.release(conn)
            _raise_first_error(answers)
            return answers
        raise AssertionError("unreachable")

    def node_for(self, key: str) -> Any:
        cluster = cast(RedisCluster, self.redis)
        return cluster.nodes_manager.get_node_from_slot(cluster.keyslot(key))

    async def _send_cluster(self, packed: bytes, count: int, key: str) -> list[Any]:
        """The round trip on a connection to the primary of ``key``'s slot, so the script and
        its WAIT share a connection. A MOVED answer updates the slot map and sends again; ASK
        sends once to the named node after ASKING; TRYAGAIN (a slot being migrated) sends again
        after a short pause; CLUSTERDOWN or a lost node refresh the map and send again after a
        short pause, CLUSTER_TRIES times in all, then the error is raised (an outage: 503 in
        the API, backoff in workers; an ASK or MOVED left at the last send as TRYAGAIN)."""
        cluster = cast(RedisCluster, self.redis)
        asking: Any = None
        for attempt in range(1, CLUSTER_TRIES + 1):
            await cluster.initialize()
            node = asking or self.node_for(key)
            conn = await _acquire(node)
            try:
                answers = await _round_trip(
                    conn, (pack_command(("ASKING",)) + packed) if asking else packed,
                    count + (1 if asking else 0))
            except (ConnectionError, TimeoutError, OSError):
                await conn.disconnect()
                node.release(conn)
                await cluster.aclose()  # the map is refreshed on the next initialize()
                if attempt == CLUSTER_TRIES:
                    raise
                await asyncio.sleep(CLUSTER_RETRY_S * attempt)
                continue
            except BaseException:
                await conn.disconnect()
                node.release(conn)
                raise
            node.release(conn)
            if asking:
                answers = answers[1:]
            asking = None
            error = next((a for a in answers if isinstance(a, ResponseError)), None)
            if isinstance(error, MovedError):
                await _note_moved(cluster.nodes_manager, error)
            elif isinstance(error, AskError):
                asking = cluster.get_node(host=error.host, port=error.port)
            elif isinstance(error, TryAgainError):
                # The slot is being migrated and the map is right: send again after a pause.
                # Not aclose(): it would disconnect every connection of the client, in the
                # middle of the other calls using them (tests/test_slot_migration.py).
                if attempt < CLUSTER_TRIES:
                    await asyncio.sleep(CLUSTER_RETRY_S * attempt)
            elif isinstance(error, (ClusterDownError, MasterDownError, ReadOnlyError)):
                await cluster.aclose()
                if attempt < CLUSTER_TRIES:
                    await asyncio.sleep(CLUSTER_RETRY_S * attempt)
            else:
                _raise_first_error(answers)
                return answers
            if attempt == CLUSTER_TRIES:
                if isinstance(error, (AskError, MovedError)):
                    # The tries ran out while the slot moves (ASK, then TRYAGAIN on the target,
                    # and so on): an outage like TRYAGAIN (REDIS_DOWN: 503, backoff), not an
                    # unexpected error answer.
                    moving = (f"slot still moving after {CLUSTER_TRIES} sends: "
                              f"{type(error).__name__} {error}")
                    raise TryAgainError(moving)  # type: ignore[no-untyped-call]  # redis-py 6
                _raise_first_error(answers)
        raise AssertionError("unreachable")


async def _note_moved(nodes_manager: Any, error: MovedError) -> None:
    """Point the slot map at the node a MOVED answer names, before the next send: redis-py 7+
    moves the slot at once (``move_slot``); 5 and 6 at the next lookup of a slot's node."""
    move_slot = getattr(nodes_manager, "move_slot", None)
    if move_slot is not None:
        await move_slot(error)
    else:
        nodes_manager.update_moved_exception(error)


async def _acquire(node: Any) -> Any:
    """A connection of a cluster node's pool, waiting (up to CLUSTER_POOL_WAIT_S) while all are
    busy: redis-py's cluster pools refuse at once, single-node pools block like this."""
    deadline = time.monotonic() + CLUSTER_POOL_WAIT_S
    while True:
        try:
            return node.acquire_connection()
        except MaxConnectionsError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.002)


async def _round_trip(conn: Any, packed: bytes, count: int) -> list[Any]:
    """Write ``packed`` (``count`` pipelined commands) on ``conn`` and read every answer; error
    answers come back as exceptions in the list, so the connection stays in step.

    The bytes go to the connection's stream writer and the answers come from its parser, with
    one time bound around the whole exchange. redis-py's own send and read put a timer on each
    read and wrap each write in ``wait_for`` (a task of its own, one more event-loop turn),
    which costs CPU on every call (``bench/clientcall.py`` measures both ways).
    Errors are redis-py's: ConnectionError for a lost socket, TimeoutError past the bound; the
    caller drops the connection on either."""
    try:
        if not conn.is_connected:  # a cluster node's pool makes its connections lazily
            await conn.connect()
    except AttributeError as exc:  # closed by another task while connecting (a failover)
        if (outage := closed_under_us(exc)) is None:
            raise
        raise outage from exc
    writer, parser = conn._writer, conn._parser
    if writer is None:  # closed by another task as its connect() ended
        raise ConnectionError("connection closed under a command: closed while connecting")
    try:
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT_S):
            writer.write(packed)
            await writer.drain()
            read = parser.read_response  # returns an error answer, where the connection raises it
            return [await read() for _ in range(count)]
    except builtins.TimeoutError:  # asyncio's; the module's TimeoutError is redis-py's
        raise TimeoutError(
            f"no answer from Redis within {ROUND_TRIP_TIMEOUT_S}s") from None
    except OSError as exc:
        raise ConnectionError(f"error talking to Redis: {exc}") from exc


def _raise_first_error(answers: list[Any]) -> None:
    for answer in answers:
        if isinstance(answer, ResponseError):
            raise answer
