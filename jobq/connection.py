"""Opening Redis: one URL, one client per process, retried with backoff while Redis is away.

``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names any node of a Redis or
Valkey Cluster: the process then uses redis-py's cluster client, which routes each command to
the primary of its key's slot (docs/architecture.md, "Redis Cluster")."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import redis
import redis.exceptions
import tenacity
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio import BlockingConnectionPool, RedisCluster
from redis.asyncio import Redis as SingleRedis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from jobq.shutdown import wait_event

T = TypeVar("T")

Redis: TypeAlias = SingleRedis | RedisCluster
"""A client of one Redis server or of a Redis Cluster (``connect`` picks by URL)."""


async def result_of(call: Awaitable[T] | T) -> T:
    """The answer of one asyncio command. redis-py 5 and 6 type the commands ``Awaitable[T] |
    T`` (one set of signatures for the blocking and the asyncio clients), which mypy does not
    let ``await``; the locks' redis-py is 6 (hack/lock-constraints.txt). Not on hot paths: it
    is one more coroutine a call."""
    return await call  # type: ignore[misc,no-any-return]

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
CLUSTER_NODE_CONNECTIONS = 512  # per node; the cluster client fails (never waits) beyond it


class NotReplicated(redis.exceptions.ConnectionError):
    """A write was applied on the primary but fewer replicas than ``JOBQ_ACK_REPLICAS``
    confirmed it in time: it may be lost if that primary fails now. The API answers 503 (the
    job was possibly created; retrying with the same idempotency key is safe)."""

    def __init__(self, message: str, *, answer: object = None) -> None:
        super().__init__(message)
        self.answer = answer  # the write's own answer, which stands on the primary


# What "Redis is away" looks like to redis-py: refused or reset connections, timeouts, a
# server still loading its AOF after a restart, and on a cluster a slot without a primary
# (CLUSTERDOWN, TRYAGAIN, MASTERDOWN during a failover). NotReplicated is a ConnectionError.
REDIS_DOWN = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError,
    redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError, redis.exceptions.SlotNotCoveredError,
    redis.exceptions.MaxConnectionsError,
)


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


# Longest wait for one answer on a redis-py call (jobq's script calls have their own bound,
# jobq.transport): redis-py 8's default, set here because 6.x's is none, where a server that
# stops answering would hang a call for ever.
SOCKET_TIMEOUT_S = 5.0


def connect(url: str, *, max_connections: int = 64) -> Redis:
    """A client for ``url``; connections are made lazily and re-made after a failure.

    The pool blocks (up to 5 s) for a free connection instead of failing when all are busy,
    so a burst of concurrent calls queues up rather than erroring. A cluster URL gives a
    cluster client whose per-node pools cannot block: they get a larger ceiling instead.
    """
    if is_cluster_url(url):
        return connect_cluster(url)
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=5,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=15,
    )
    client = SingleRedis.from_pool(pool)
    # One immediate retry for a connection gone stale, no hidden backoff: redis-py's default
    # (10 retries, sleeps up to 1 s) would hide outages from our own retry policy (tenacity,
    # 503s) and stall blocking calls for a second after Redis comes back.
    client.set_retry(Retry(NoBackoff(), 1))
    return client


class _CommandTable(AsyncCommandsParser):
    """The server's COMMAND table, read once per client from any node that answers.

    redis-py reads it again at every refresh of the slot map, from the first primary listed,
    and gives up when that node is down: while one primary is dead (no replica promoted yet,
    or none left), every refresh, hence every command on every queue, would then fail."""

    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__()
        self._cluster = cluster

    async def initialize(self, node: Any = None) -> None:
        if self.commands:
            return
        error: Exception | None = None
        for candidate in [node, *self._cluster.nodes_manager.nodes_cache.values()]:
            if candidate is None:
                continue
            try:
                await super().initialize(candidate)
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    OSError) as exc:
                error = exc
        if error is not None:
            raise error


_CLOSED_STREAM = re.compile(r"'NoneType' object has no attribute '(write|read|drain)")


def closed_under_us(exc: AttributeError) -> redis.exceptions.ConnectionError | None:
    """What to raise for an AttributeError from redis-py's connection code: during a failover
    another task (a cluster client's topology refresh) can close a connection while a command
    is being sent on it, and redis-py then writes to or reads from its stream ``None``
    (``'NoneType' object has no attribute 'writelines'``, redis-py 6.4). That is an outage like
    any other (REDIS_DOWN: 503 in the API, backoff in workers): a ConnectionError to raise
    instead. None for any other AttributeError: a bug, to be raised unchanged."""
    if _CLOSED_STREAM.search(str(exc)):
        return redis.exceptions.ConnectionError(f"connection closed under a command: {exc}")
    return None


class ClusterClient(RedisCluster):
    """redis-py's cluster client, its slot map loaded before a command is routed: commands
    sent at once on a fresh client can otherwise be routed before the map is in, on nodes that
    the map's arrival then closes (``'NoneType' object has no attribute 'writelines'``,
    redis-py 8.1; tests/test_redis_cluster.py sends such a burst). Its COMMAND table is read
    once (``_CommandTable``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_parser = _CommandTable(self)

    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterClient:
        """Load the slot map; no node reachable is an outage like any other (ConnectionError,
        retried by our policies), not redis-py's generic cluster error."""
        try:
            await super().initialize(*args, **kwargs)
        except redis.exceptions.RedisClusterException as exc:
            if "cannot be connected" in str(exc):
                raise redis.exceptions.ConnectionError(str(exc)) from exc
            raise
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.initialize()  # at once when loaded; else waits for the one loading
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            if (outage := closed_under_us(exc)) is None:
                raise
            raise outage from exc


def connect_cluster(url: str) -> RedisCluster:
    """A cluster client from a ``redis+cluster://`` URL (any node; the others are found).

    A few quick retries ride over MOVED/ASK and a failover's first moments; anything longer is
    an outage for our own policies (503 + Retry-After in the API, backoff in workers).
    """
    scheme, sep, rest = url.partition("://")
    return ClusterClient.from_url(
        f"{CLUSTER_SCHEMES[scheme.lower()]}{sep}{rest}",
        decode_responses=True,
        max_connections=CLUSTER_NODE_CONNECTIONS,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=1.0,
        socket_keepalive=True,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
    )


def connect_sync(url: str, *, timeout_s: float) -> redis.Redis | redis.RedisCluster:
    """A blocking client for ``url`` (one server or a cluster), for the rare code that cannot
    use the event loop (the shutdown watchdog, when the loop is stuck)."""
    if is_cluster_url(url):
        scheme, sep, rest = url.partition("://")
        return redis.RedisCluster.from_url(  # type: ignore[no-any-return,no-untyped-call]
            f"{CLUSTER_SCHEMES[scheme.lower()]}{sep}{rest}", socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s)
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def retrying(
    *, give_up_after_s: float | None = None, max_wait_s: float = 5.0,
    on: tuple[type[BaseException], ...] = REDIS_DOWN, until: asyncio.Event | None = None,
) -> tenacity.AsyncRetrying:
    """Retry on Redis outages (or the errors in ``on``) with exponential backoff and jitter,
    forever unless limited; with ``until``, a pause between tries ends as soon as that event is
    set, and no further try starts (the last error is raised).

    Build a new one for every retry loop, never keep one to reuse: ``AsyncRetrying`` keeps the
    state of its ``async for`` on the instance, so two loops sharing one (two jobs finishing at
    once) end each other early, without their write and without an error.
    """
    stop: tenacity.stop.stop_base = (
        tenacity.stop_after_delay(give_up_after_s) if give_up_after_s else tenacity.stop_never)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    if until is not None:
        event = until
        stop = tenacity.stop_any(stop, _StopWhenSet(event))

        async def sleep(seconds: float) -> None:
            await wait_event(event, seconds)

    return tenacity.AsyncRetrying(
        sleep=sleep,
        retry=tenacity.retry_if_exception_type(on),
        # wait_exponential_jitter's ``initial`` is deprecated from tenacity 9.2; this sum is the
        # same wait (0.05 s doubling up to the cap, plus up to 1 s of jitter) on 8.2 and later.
        wait=tenacity.wait_exponential(multiplier=0.05, max=max_wait_s)
        + tenacity.wait_random(0, 1),
        stop=stop,
        reraise=True,
    )


class _StopWhenSet(tenacity.stop.stop_base):
    """Stop retrying once an asyncio event is set (tenacity's own takes a threading.Event)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.event.is_set()


async def redis_now_ms(redis: Redis, near: str | None = None) -> int:
    """Redis's clock, the one every script stamps jobs with (ms since the epoch). On a
    cluster, that of the primary holding key ``near`` (the node whose scripts stamp its jobs)."""
    if isinstance(redis, RedisCluster):
        node = redis.get_node_from_key(near) if near is not None else None
        seconds, micros = await (redis.time(target_nodes=node) if node is not None
                                 else redis.time())
    else:
        seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000
