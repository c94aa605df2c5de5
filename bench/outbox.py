"""The transactional outbox's relay: throughput (rows/s moved from PostgreSQL into jobq by one
relay) and the latency it adds from a row's commit to its job's start, measured at half that
throughput with a real worker running the jobs.

    .venv/bin/python bench/outbox.py [--rows 20000] [--batch 500] [--seconds 10]

Starts its own PostgreSQL (tests/postgres.py: Debian's server, a throw-away cluster) and the
embedded Valkey. Prints figures; asserts nothing. Latency is commit (the writer's clock after
COMMIT returned) to the job's processedAt (Redis TIME, same machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

import psycopg  # noqa: E402
from postgres import PostgresServer  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from jobq.contrib.outbox import row_job_id  # noqa: E402
from jobq.contrib.outbox.relay import Relay  # noqa: E402
from jobq.contrib.outbox.table import metadata  # noqa: E402
from jobq.embedded import ServerProcess, free_port, valkey_binary  # noqa: E402
from jobq.logs import configure_logging  # noqa: E402
from jobq.settings import Settings  # noqa: E402
from jobq.sync import SyncClient  # noqa: E402
from jobq.tasks import load_registry  # noqa: E402

INSERT = "INSERT INTO jobq_outbox (task, payload) VALUES ('noop', %s) RETURNING id"


def outbox_db(pg: PostgresServer, name: str) -> str:
    dsn = pg.create_database(name)
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    metadata.create_all(engine)
    engine.dispose()
    return dsn


def throughput(pg: PostgresServer, settings: Settings, rows: int, batch: int) -> float:
    """Rows/s one relay moves from a full outbox (rows committed beforehand)."""
    dsn = outbox_db(pg, "throughput")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO jobq_outbox (task, payload) VALUES ('noop', %s)",
                        [(psycopg.types.json.Jsonb({"n": i}),) for i in range(rows)])
    with SyncClient(settings, load_registry(settings.tasks)) as client:
        relay = Relay(lambda: psycopg.connect(dsn), client, batch=batch)
        started = time.perf_counter()
        moved = 0
        while (n := relay.relay_batch().rows):
            moved += n
        elapsed = time.perf_counter() - started
        relay.close()
    assert moved == rows, (moved, rows)
    return rows / elapsed


def latency(pg: PostgresServer, settings: Settings, rate: float, seconds: float,
            batch: int) -> dict[str, float]:
    """Commit -> job start, with rows committed one per transaction at ``rate`` rows/s (4
    writers), a relay process (``jobq outbox relay``, polling every 0.1 s when idle) and a real
    worker process draining bench-queue."""
    dsn = outbox_db(pg, "latency")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(REDIS_URL=settings.redis_url, JOBQ_KEY_PREFIX=settings.key_prefix,
               JOBQ_TASKS="benchtasks", PYTHONPATH=str(BENCH), JOBQ_LOG_LEVEL="warning",
               JOBQ_COMPLETED_KEEP="10000000")  # keep every record: their processedAt is read
    log = Path(tempfile.mkdtemp(prefix="bench-worker-")) / "worker.log"
    with log.open("wb") as out:
        worker_port = free_port()
        worker = subprocess.Popen([sys.executable, "-m", "jobq", "worker", "--queue",
                                   "bench-queue:32", "--metrics-port", str(worker_port)], env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    committed: dict[int, float] = {}
    lock = threading.Lock()
    writers = 4
    total = int(rate * seconds)

    def write(k: int) -> None:
        every = writers / rate
        with psycopg.connect(dsn, autocommit=True) as conn:
            due = time.monotonic()
            for i in range(k, total, writers):
                due += every
                row = conn.execute(INSERT, (psycopg.types.json.Jsonb({"n": i}),)).fetchone()
                at = time.time()
                assert row is not None
                with lock:
                    committed[row[0]] = at
                time.sleep(max(0.0, due - time.monotonic()))

    with (log.parent / "relay.log").open("wb") as out:
        relay_port = free_port()
        relay = subprocess.Popen([sys.executable, "-m", "jobq", "outbox", "relay", "--dsn", dsn,
                                  "--batch", str(batch), "--metrics-port", str(relay_port)],
                                 env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    _await_up(worker_port)  # both up before the first commit: start-up is not measured
    _await_up(relay_port)
    with SyncClient(settings, load_registry(settings.tasks)) as client:
        started = time.perf_counter()
        threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        achieved = len(committed) / (time.perf_counter() - started)
        deadline = time.monotonic() + 60
        while client.counts().get("bench-queue", {}).get("completed", 0) < len(committed):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        relay.terminate()
        relay.wait(30)
        to_start: list[float] = []
        to_job: list[float] = []
        for row_id, at in committed.items():
            job = client.get_job(row_job_id("bench-queue", row_id))
            if job.processedAt and job.createdAt:
                to_start.append((_epoch(job.processedAt) - at) * 1000)
                to_job.append((_epoch(job.createdAt) - at) * 1000)
    worker.terminate()
    worker.wait(30)
    return {"rate": achieved, "jobs": len(to_start), **_percentiles("start", to_start),
            **_percentiles("created", to_job)}


def _await_up(port: int, timeout_s: float = 60.0) -> None:
    """Wait until a process answers /healthz on ``port``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing answers on port {port} after {timeout_s}s") from None
            time.sleep(0.05)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _percentiles(name: str, values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {f"{name} p50": values[len(values) // 2], f"{name} p95": values[int(len(values) * .95)],
            f"{name} p99": values[int(len(values) * .99)], f"{name} mean": statistics.fmean(values)}


def _line(lat: dict[str, float], name: str) -> str:
    return ", ".join(f"{q} {lat[f'{name} {q}']:.0f} ms" for q in ("p50", "p95", "p99", "mean"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging("warning", "console")
    pg = PostgresServer().start()
    valkey = ServerProcess(valkey_binary(), Path(tempfile.mkdtemp(prefix="bench-valkey-"))).start()
    try:
        settings = Settings(redis_url=valkey.url, key_prefix=f"b{uuid.uuid4().hex[:8]}",
                            tasks=["benchtasks"])
        rows_s = throughput(pg, settings, args.rows, args.batch)
        print(f"relay throughput: {rows_s:,.0f} rows/s ({args.rows} rows, batch {args.batch}, "
              f"one relay, PostgreSQL 15 fsync off, embedded Valkey)")
        lat = latency(pg, settings.model_copy(update={"key_prefix": f"l{uuid.uuid4().hex[:8]}"}),
                      rows_s / 2, args.seconds, args.batch)
        print(f"at {lat['rate']:,.0f} rows/s (target {rows_s / 2:,.0f}; one row per "
              f"transaction, 4 writers, relay poll 0.1 s, 1 worker x32), {lat['jobs']:.0f} jobs:")
        print(f"  commit -> job created (the relay's share): {_line(lat, 'created')}")
        print(f"  commit -> job start (relay + worker):      {_line(lat, 'start')}")
    finally:
        valkey.stop()
        pg.stop()


if __name__ == "__main__":
    main()
