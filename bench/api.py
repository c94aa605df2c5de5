"""Throughput and latency of ``POST /jobs`` on one ``jobq api`` process.

    .venv/bin/python bench/api.py                      # starts Redis (embedded) and the API
    .venv/bin/python bench/api.py --url http://127.0.0.1:8000 --token T   # an API already up
    .venv/bin/python bench/api.py --client-check       # what the load generator alone can do

Phase 1 keeps ``--connections`` keep-alive connections busy (closed loop) and reports the
sustained accepted/s with p50/p99 latency. Phase 2 sends at half that rate on a fixed
schedule (open loop) and measures latency from each request's *scheduled* time, so a stall
is not hidden by the client waiting for it. The load generator is raw asyncio HTTP/1.1 (uvloop
when installed), far cheaper than the server it measures; ``--client-check`` proves that by
pointing it at a do-nothing server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # plain asyncio then: slower, but the numbers say which loop ran
    uvloop = None  # type: ignore[assignment]

HEAD = (b"POST /jobs HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"%sContent-Length: %d\r\n\r\n")
BODY = (b'{"type":"welcome-email","idempotencyKey":"%s",'
        b'"payload":{"email":"ada@example.com","name":"Ada"}}')


def split_message(buffer: bytes) -> tuple[bytes, bytes] | None:
    """The head of the first complete HTTP message in ``buffer`` and what follows its body."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    return head, buffer[end + 4 + length:]


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight at a time."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        message = split_message(self.buffer)
        if message is None:
            return
        head, self.buffer = message
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def post(self, key: bytes, auth: bytes) -> int:
        assert self.transport is not None
        body = BODY % key
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(HEAD % (auth, len(body)) + body)
        return await self.waiter


class Run:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}


async def drive(host: str, port: int, connections: int, seconds: float, rate: float | None,
                auth: bytes, tag: str) -> tuple[Run, float]:
    """Closed loop when ``rate`` is None, else requests scheduled at ``rate``/s."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(Connection, host, port))[1] for _ in range(connections)]
    run, counter = Run(), iter(range(10**9))
    start = time.perf_counter()
    stop = start + seconds

    async def worker(conn: Connection) -> None:
        while True:
            n = next(counter)
            if rate is None:
                sent = time.perf_counter()
            else:
                sent = start + n / rate  # latency counts from the scheduled time
                if sent - time.perf_counter() > 0:
                    await asyncio.sleep(sent - time.perf_counter())
            if sent >= stop:
                return
            status = await conn.post(f"{tag}-{n}".encode(), auth)
            run.latencies.append(time.perf_counter() - sent)
            run.statuses[status] = run.statuses.get(status, 0) + 1

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    return run, elapsed


def report(name: str, run: Run, elapsed: float) -> float:
    accepted = run.statuses.get(202, 0)
    lat = sorted(run.latencies)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan")
    print(f"{name:<10} {accepted / elapsed:8.0f} accepted/s  {len(lat) / elapsed:8.0f} req/s  "
          f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  statuses {dict(sorted(run.statuses.items()))}",
          flush=True)
    return accepted / elapsed


async def dummy_server(port: int) -> None:
    """Answers every request with a canned 202 (for --client-check)."""
    answer = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
              b"content-length: 2\r\n\r\n{}")

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (message := split_message(self.buf)) is not None:
                self.buf = message[1]
                self.transport.write(answer)

    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def start_stack(stack: list[subprocess.Popen[bytes]], *, with_details: bool = False) -> Any:
    """Start Redis (unless REDIS_URL is set) and one ``jobq api``; return the API's URL (with
    ``with_details``: the URL, the Redis URL and the key prefix)."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        from jobq.embedded import ServerProcess, valkey_binary

        server = ServerProcess(valkey_binary(), Path(tempfile.mkdtemp(prefix="bench-redis-")))
        server.start()
        assert server.process is not None
        stack.append(server.process)
        redis_url = server.url
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env.update(REDIS_URL=redis_url, JOBQ_KEY_PREFIX=prefix, JOBQ_TASKS="jobq.demo",
               JOBQ_LOG_LEVEL="warning")
    # cwd elsewhere: from the repository root, ./jobq would shadow the installed package.
    stack.append(subprocess.Popen([sys.executable, "-m", "jobq", "api", "--port", str(port)],
                                  env=env, cwd=tempfile.gettempdir()))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    print(f"api {url} (one uvicorn process), redis {redis_url}", flush=True)
    return (url, redis_url, prefix) if with_details else url


async def measure(url: str, args: argparse.Namespace) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = f"Authorization: Bearer {args.token}\r\n".encode() if args.token else b""
    tag = uuid.uuid4().hex[:8]
    await drive(host, port, args.connections, args.warmup, None, auth, f"w{tag}")
    run, elapsed = await drive(host, port, args.connections, args.seconds, None, auth, f"f{tag}")
    full = report("full load", run, elapsed)
    rate = args.rate or full / 2
    run, elapsed = await drive(host, port, args.connections, args.seconds, rate, auth, f"h{tag}")
    report(f"{rate:.0f}/s", run, elapsed)


def main(args: argparse.Namespace, run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    stack: list[subprocess.Popen[bytes]] = []
    try:
        if args.client_check:
            port = free_port()
            stack.append(subprocess.Popen([sys.executable, __file__, "--serve-dummy", str(port)]))
            url = f"http://127.0.0.1:{port}"
            wait_http(url)
            print("client check: the load generator against a do-nothing server process")
        else:
            url = args.url or start_stack(stack)
        run(measure(url, args))
    finally:
        for proc in reversed(stack):
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="target this API instead of starting one")
    parser.add_argument("--token", help="bearer token, if the API wants one")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up seconds")
    parser.add_argument("--rate", type=float, help="paced phase rate (default: half of full)")
    parser.add_argument("--client-check", action="store_true",
                        help="measure the load generator alone against a canned server")
    parser.add_argument("--serve-dummy", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    run = uvloop.run if uvloop else asyncio.run
    if arguments.serve_dummy:
        run(dummy_server(arguments.serve_dummy))
    else:
        main(arguments, run)
