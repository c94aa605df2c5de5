"""The transactional outbox on a real PostgreSQL, moved by real relay processes (R27): a job
exists if and only if the transaction that wrote its row committed; a relay that crashes loses
nothing and makes no duplicate; relays running at once make no duplicate."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fixtures import REPO, Proc, eventually, logged, process_env, scrape
from outbox_helpers import (
    WELCOME,
    insert_rows,
    outbox_database,
    pending,
    start_relay,
    stopped_totals,
)
from postgres import PostgresServer

from jobq.client import Client
from jobq.contrib.outbox import row_job_id
from jobq.errors import NotFound
from jobq.settings import Settings
from jobq.tasks import Registry

pytestmark = pytest.mark.any_server


async def waiting(client: Client, queue: str = "email-queue") -> int:
    return int((await client.queue_counts(queue))["waiting"])


async def job_exists(client: Client, job_id: str) -> bool:
    try:
        await client.get_job(job_id)
    except NotFound:
        return False
    return True


async def test_committed_row_is_one_job_rolled_back_none_refused_kept(
    postgres: PostgresServer, settings: Settings, registry: Registry, client: Client,
    spawn: Callable[..., Proc],
) -> None:
    from sqlalchemy import create_engine, select

    from jobq.contrib.outbox.table import enqueue_in_outbox, outbox

    dsn = outbox_database(postgres)
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        committed = enqueue_in_outbox(conn, registry, "welcome-email", WELCOME)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        enqueue_in_outbox(conn, registry, "welcome-email", {**WELCOME, "name": "Rolled"})
        raise RuntimeError("roll back")
    insert_rows(dsn, 1, task="no-such-task")  # written by an app that knows a task jobq does not
    relay = start_relay(spawn, settings, dsn, "--until-empty")
    assert relay.wait(60) == 0, relay.output()
    assert stopped_totals(relay) == {"created": 1, "duplicate": 0, "failed": 1}
    assert await waiting(client) == 1
    job = await client.get_job(committed)
    assert job.payload == WELCOME and job.idempotencyKey == "outbox:1"
    with engine.connect() as conn:
        left = conn.execute(select(outbox.c.task, outbox.c.error)).all()
    engine.dispose()
    assert [(task, "unknown task" in (error or "")) for task, error in left] == \
        [("no-such-task", True)]


async def test_relay_crash_after_enqueue_before_delete_resends_the_same_jobs(
    postgres: PostgresServer, settings: Settings, client: Client, spawn: Callable[..., Proc],
) -> None:
    """The crash window itself, made certain: a trigger holds the relay's DELETE (after its
    enqueue) until the relay is killed -9; the next relay sends the rows again and jobq answers
    each as a duplicate."""
    dsn = outbox_database(postgres)
    with psycopg.connect(dsn) as conn:
        conn.execute("""CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS
                        $$ BEGIN PERFORM pg_sleep(600); RETURN OLD; END $$""")
        conn.execute("CREATE TRIGGER hold BEFORE DELETE ON jobq_outbox "
                     "FOR EACH STATEMENT EXECUTE FUNCTION hold()")
    ids = insert_rows(dsn, 10)
    first = start_relay(spawn, settings, dsn)
    job_ids = [row_job_id("email-queue", i) for i in ids]

    async def all_enqueued() -> bool:
        return all([await job_exists(client, j) for j in job_ids])

    await eventually(all_enqueued, what="the first relay's enqueue")
    first.kill9()
    with psycopg.connect(dsn, autocommit=True) as conn:  # end the held DELETE's session
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()")
        conn.execute("DROP TRIGGER hold ON jobq_outbox")
    assert pending(dsn) == 10  # the killed relay's batch rolled back
    second = start_relay(spawn, settings, dsn, "--until-empty")
    assert second.wait(60) == 0, second.output()
    assert stopped_totals(second) == {"created": 0, "duplicate": 10, "failed": 0}
    assert pending(dsn) == 0
    assert await waiting(client) == 10


async def test_two_relays_at_once_make_no_duplicate(
    postgres: PostgresServer, settings: Settings, client: Client, spawn: Callable[..., Proc],
) -> None:
    dsn = outbox_database(postgres)
    relays = [start_relay(spawn, settings, dsn, "--batch", "20", "--poll-s", "0.01")
              for _ in range(2)]
    for relay in relays:
        await logged(relay, "outbox.relay_started")
    await asyncio.to_thread(insert_rows, dsn, 2000)  # one commit: both relays see all at once
    await eventually(lambda: asyncio.to_thread(lambda: pending(dsn) == 0), timeout=60,
                     what="the outbox to empty")
    for relay in relays:
        relay.terminate()
        assert relay.wait(30) == 0
    totals = [stopped_totals(r) for r in relays]
    assert sum(t["created"] for t in totals) == 2000
    assert [t["duplicate"] for t in totals] == [0, 0], totals  # no row was sent twice
    assert all(t["created"] > 0 for t in totals), totals  # both took part
    assert await waiting(client) == 2000


async def test_relay_killed_at_random_moments_while_rows_commit(
    postgres: PostgresServer, settings: Settings, client: Client, spawn: Callable[..., Proc],
) -> None:
    """1,000 rows committed by 4 writers while a relay is killed -9 at random moments and
    restarted: every row becomes exactly one job, none lost."""
    dsn = outbox_database(postgres)
    ids: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        """Commits ``n`` rows, one per transaction, spread over about 3 s (so the kills below
        fall among commits)."""
        with psycopg.connect(dsn) as conn:
            for _ in range(n):
                with conn.transaction():
                    row = conn.execute(
                        "INSERT INTO jobq_outbox (task, payload) VALUES (%s, %s) RETURNING id",
                        ("welcome-email", psycopg.types.json.Jsonb(WELCOME))).fetchone()
                with lock:
                    ids.append(row[0])
                time.sleep(0.012)  # pacing the writer, not waiting for anything

    rng = random.Random(os.environ.get("JOBQ_TEST_SEED"))
    writers = asyncio.gather(*(asyncio.to_thread(writer, 250) for _ in range(4)))
    kills = 0
    while not writers.done() or kills < 3:
        relay = start_relay(spawn, settings, dsn, "--batch", "50", "--poll-s", "0.02")
        await logged(relay, "outbox.relay_started")
        await asyncio.sleep(rng.uniform(0, 0.5))  # a random moment of its loop
        relay.kill9()
        kills += 1
    await writers
    last = start_relay(spawn, settings, dsn, "--until-empty")
    assert last.wait(60) == 0, last.output()
    resent = stopped_totals(last)["duplicate"]  # rows a killed relay had enqueued, not deleted
    assert len(ids) == 1000 and pending(dsn) == 0
    assert await waiting(client) == 1000
    missing = [i for i in ids if not await job_exists(client, row_job_id("email-queue", i))]
    assert missing == [], f"{kills} kills, {resent} rows re-sent"


async def test_relay_metrics_pending_oldest_age_and_refused(
    postgres: PostgresServer, settings: Settings, spawn: Callable[..., Proc],
) -> None:
    """A relay that cannot reach Redis moves nothing: its /metrics shows the rows waiting and
    the oldest one's age growing, which is what the outbox-age alert reads."""
    dsn = outbox_database(postgres)
    insert_rows(dsn, 3)
    insert_rows(dsn, 1, task="no-such-task")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE jobq_outbox SET created_at = now() - interval '90 seconds' "
                     "WHERE id = 1")
        conn.execute("UPDATE jobq_outbox SET error = 'unknown task' WHERE task = 'no-such-task'")
    away = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    relay = spawn(["outbox", "relay", "--dsn", dsn, "--metrics-port", "0"],
                  process_env(away), name="relay")
    (started,) = await logged(relay, "outbox.relay_started")
    await logged(relay, "outbox.batch_failed")
    samples = scrape(int(started["metricsPort"]))
    assert samples["jobq_outbox_pending_rows"] == 3
    assert 90 <= samples["jobq_outbox_oldest_age_seconds"] < 600
    assert samples["jobq_outbox_failed_rows"] == 1
    assert samples['jobq_outbox_relayed_total{outcome="created"}'] == 0
    assert pending(dsn) == 4


def test_relay_cli_errors_are_one_line(tmp_path: Path, settings: Settings) -> None:
    import subprocess
    import sys

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobq", "outbox", "relay", *args],
                              env=process_env(settings, **env), capture_output=True, text=True,
                              cwd=REPO, timeout=60)

    bad = run("--dsn", "not a dsn = =")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "--dsn" in bad.stderr
    hidden = tmp_path / "no-psycopg" / "psycopg"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    missing = run("--dsn", "postgresql://x/y",
                  PYTHONPATH=f"{hidden.parent}{os.pathsep}{REPO / 'tests'}")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "pip install 'jobq[outbox]'" in missing.stderr
