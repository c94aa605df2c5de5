"""CPU per Redis call, one call at a time, in each runtime the side-by-side bench compares:
a bare socket round trip (an asyncio Protocol on uvloop; Node's net), the job body's client
(redis-py's asyncio ``incr``; ioredis's ``incr``) and jobq's own script-call round trip
(``jobq.transport.Transport``, an ``EVALSHA`` of a one-line script), next to the same call
through redis-py's connection send and read, which the Transport used before.

    .venv/bin/python bench/clientcall.py [--calls 20000] [--trials 3] [--redis-py-from DIR]

``--redis-py-from DIR`` also measures the job body's ``incr`` with the redis-py found in DIR
(e.g. another version: ``pip install --target DIR redis==8.1.0``), in a process of its own, and
counts the Python function calls each ``incr`` makes (cProfile; exact, unlike CPU time on a
loaded machine): hack/lock-constraints.txt keeps the locks on the version this shows cheaper.

It shows where the worker CPU per job of bench/sidebyside.py goes: every job body there makes
one such call. Embedded Valkey; prints microseconds of user + system CPU per call (median of
the trials); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import hiredis
import redis
import uvloop
from redis.asyncio import Redis

from jobq.connection import connect
from jobq.embedded import ServerProcess, valkey_binary
from jobq.transport import Transport

BENCH = Path(__file__).resolve().parent
BULL = BENCH / "bullmq"
PING = hiredis.pack_command(("PING",))


async def per_call_us(calls: int, one: Callable[[], Awaitable[object]]) -> float:
    await one()  # connected and warm
    started = time.process_time()
    for _ in range(calls):
        await one()
    return (time.process_time() - started) / calls * 1e6


class _Answers(asyncio.Protocol):
    """A bare client: one hiredis reader, one future per call."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: asyncio.Future[object] | None = None

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        answer = self.reader.gets()
        if answer is not False and self.waiting is not None:
            self.waiting.set_result(answer)


async def python_figures(host: str, port: int, calls: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    sock, answers = await loop.create_connection(_Answers, host, port)

    async def raw() -> object:
        answers.waiting = loop.create_future()
        sock.write(PING)
        return await answers.waiting

    figures = {"raw": await per_call_us(calls, raw)}
    sock.close()
    body = Redis(host=host, port=port)  # as a job body makes it: redis-py's defaults
    figures["client"] = await per_call_us(calls, lambda: body.incr("clientcall:n"))
    await body.aclose()
    jobq = connect(f"redis://{host}:{port}/0")
    transport = Transport(jobq)
    sha = await jobq.script_load("return 1")
    figures["jobq"] = await per_call_us(
        calls, lambda: transport.send([("EVALSHA", sha, 1, "clientcall:k")], "clientcall:k"))
    conn = await jobq.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    packed = hiredis.pack_command(("EVALSHA", sha, 1, "clientcall:k"))

    async def redis_py_send_read() -> object:
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()

    figures["redis-py path"] = await per_call_us(calls, redis_py_send_read)
    await jobq.connection_pool.release(conn)
    await jobq.aclose()
    return figures


async def client_figures(host: str, port: int, calls: int) -> dict[str, float]:
    """The job body's ``incr`` alone: CPU µs per call and Python function calls per call."""
    body = Redis(host=host, port=port)
    us = await per_call_us(calls, lambda: body.incr("clientcall:n"))
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(1000):
        await body.incr("clientcall:n")
    profile.disable()
    await body.aclose()
    return {"us": us, "calls": pstats.Stats(profile).total_calls / 1000}  # type: ignore[attr-defined]


def other_client_figures(path: str, host: str, port: int, calls: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, str(BENCH)])}
    out = subprocess.run([sys.executable, str(BENCH / "clientcall.py"), "--client-only", host,
                          str(port), str(calls)], check=True, capture_output=True, env=env)
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def node_figures(host: str, port: int, calls: int) -> dict[str, float]:
    out = subprocess.run(["node", str(BULL / "calls.js"), host, str(port), str(calls)],
                         check=True, capture_output=True, cwd=BULL)
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--redis-py-from", metavar="DIR")
    parser.add_argument("--client-only", nargs=3, metavar=("HOST", "PORT", "CALLS"),
                        help=argparse.SUPPRESS)  # the other redis-py's process
    args = parser.parse_args()
    if args.client_only:
        host, port, calls = args.client_only
        figures = uvloop.run(client_figures(host, int(port), int(calls)))
        print(json.dumps({**figures, "version": redis.__version__}))
        return
    from sidebyside import install_bullmq  # the pinned ioredis comes with BullMQ's lock file

    install_bullmq()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(valkey_binary(), Path(data)).start()
        try:
            for _ in range(args.trials):
                py = uvloop.run(python_figures("127.0.0.1", server.port, args.calls))
                node = node_figures("127.0.0.1", server.port, args.calls)
                for name, value in (("bare socket round trip (PING)", (py["raw"], node["raw"])),
                                    ("job body's client: incr", (py["client"], node["ioredis"]))):
                    rows.setdefault(f"{name}|py", []).append(value[0])
                    rows.setdefault(f"{name}|node", []).append(value[1])
                rows.setdefault("jobq Transport: EVALSHA round trip|py", []).append(py["jobq"])
                rows.setdefault("same EVALSHA through redis-py's send and read|py",
                                []).append(py["redis-py path"])
                versions = [("", "127.0.0.1", server.port)]
                if args.redis_py_from:
                    versions.append((args.redis_py_from, "127.0.0.1", server.port))
                for path, host, port in versions:
                    figures = (uvloop.run(client_figures(host, port, args.calls)) | {
                        "version": redis.__version__} if not path
                        else other_client_figures(path, host, port, args.calls))
                    name = f"incr, redis-py {figures['version']}"
                    rows.setdefault(f"{name}: CPU µs|py", []).append(figures["us"])
                    rows.setdefault(f"{name}: Python calls|py", []).append(figures["calls"])
        finally:
            server.stop()
    print(f"CPU per call, one at a time, µs (median of {args.trials}; {args.calls:,} calls)\n")
    print("| call | Python 3.11 + uvloop | Node |")
    print("|---|---:|---:|")
    for name in dict.fromkeys(key.split("|")[0] for key in rows):
        py_us = statistics.median(rows[f"{name}|py"])
        node_us = rows.get(f"{name}|node")
        print(f"| {name} | {py_us:.1f} | {statistics.median(node_us):.1f} |" if node_us
              else f"| {name} | {py_us:.1f} | |")


if __name__ == "__main__":
    main()
