"""Progress and waiting on a job: ``ctx.progress`` from a real worker, the long poll
``GET /jobs/{id}/status?wait=``, the SSE stream ``GET /jobs/{id}/events`` from a real API
process, and ``jobq status ID --wait``; all on the per-queue event stream, never polling."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import ApiFactory, ApiServer, assert_error
from fixtures import Proc, command_stats, eventually, process_env, reset_command_stats
from redis.asyncio import Redis

from jobq import admin
from jobq.client import Client
from jobq.errors import LeaseLost
from jobq.jobs import State
from jobq.settings import Settings
from jobq.watch import JobWatch

JOBQ = str(Path(sys.executable).with_name("jobq"))


def ms_of(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


async def test_progress_is_stored_fenced_and_shown(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc],
) -> None:
    job = await client.enqueue("steps", "p1", {"steps": 4, "seconds": 0.05})
    start_worker("report-queue:1")
    done = (await api.get(f"/jobs/{job.job_id}/status", params={"wait": 30})).json()
    assert done["state"] == "completed", done
    assert done["progress"]["fraction"] == 1.0
    assert done["progress"]["message"] == "step 4 of 4"
    assert done["progress"]["updatedAt"].endswith("Z")
    full = (await api.get(f"/jobs/{job.job_id}")).json()
    assert full["progress"] == done["progress"]
    # A worker whose lease is gone (here: a token that is not the job's) writes nothing.
    with pytest.raises(LeaseLost):
        await client.scripts.progress(client.keys("report-queue"), job.job_id, "w:1", 0.5, "x")
    after = (await client.get_job(job.job_id)).progress
    assert after is not None and (after.fraction, after.message) == (1.0, "step 4 of 4")


async def test_a_long_poll_returns_within_50_ms_of_completion(
    api: httpx.AsyncClient, client: Client, start_worker: Callable[..., Proc],
) -> None:
    worker = start_worker("report-queue:4")
    lags = []
    for n in range(5):
        job = await client.enqueue("sleep", f"lp{n}", {"seconds": 0.5})
        answer = await api.get(f"/jobs/{job.job_id}/status", params={"wait": 5})
        received_ms = time.time() * 1000
        view = answer.json()
        assert view["state"] == "completed", view
        lags.append(received_ms - ms_of(view["finishedAt"]))
    assert worker.popen.poll() is None
    # finishedAt is Redis's clock, on this machine: the lag is what the long poll added.
    assert statistics.median(lags) < 50, lags


async def test_a_long_poll_ends_after_its_wait_without_polling_redis(
    api_app: ApiFactory, client: Client, redis: Redis,
) -> None:
    job = await client.enqueue("sleep", "idle", {"seconds": 0})
    async with api_app(status_wait_max_s=1.0) as api:
        await reset_command_stats(redis)
        started = time.monotonic()
        view = (await api.get(f"/jobs/{job.job_id}/status", params={"wait": 600})).json()
        waited = time.monotonic() - started
        stats = await command_stats(redis)
    assert view["state"] == "waiting" and view["progress"] is None
    assert 1.0 <= waited < 10, waited  # cut to JOBQ_STATUS_WAIT_MAX_S
    # get_job (one read per queue of the registry: 4), one read after listening, one at the
    # end; one XREAD blocking all along (counted only once it returns).
    assert stats["cmdstat_hgetall"]["calls"] <= 6, stats["cmdstat_hgetall"]
    assert stats.get("cmdstat_xread", {"calls": 0})["calls"] <= 1, stats
    assert stats["cmdstat_pexpire"]["calls"] == 1, stats  # the reader's stream, kept alive
    assert_error(await api_app_get(api_app, "/jobs/nope/status?wait=5"), 404, "not_found")
    async with api_app() as api:
        assert_error(await api.get(f"/jobs/{job.job_id}/status", params={"wait": -1}),
                     422, "validation_error")


async def api_app_get(api_app: ApiFactory, path: str) -> httpx.Response:
    async with api_app() as api:
        return await api.get(path)


async def test_many_watchers_share_one_reader_and_all_hear_the_end(
    client: Client, start_worker: Callable[..., Proc],
) -> None:
    watch = JobWatch(client)
    try:
        jobs = [await client.enqueue("sleep", f"m{n}", {"seconds": 0.2}) for n in range(20)]
        waits = [asyncio.ensure_future(watch.wait(j.job_id, 60)) for j in jobs * 3]
        await eventually(lambda: _ready(watch), what="the reader to start")
        assert len(watch.readers) == 1
        started = time.monotonic()
        start_worker("report-queue:10")
        done = await asyncio.gather(*waits)
        assert {j.state for j in done} == {State.COMPLETED}
        assert time.monotonic() - started < 30  # woken by the events, not by the 60 s limit
    finally:
        await watch.close()


async def _ready(watch: JobWatch) -> bool:
    return any(r.ready.is_set() for r in watch.readers.values())


def sse(text: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(event, data) per SSE frame; comments as ("comment", None)."""
    import json

    out: list[tuple[str, dict[str, Any] | None]] = []
    for block in text.split("\n\n"):
        if block.startswith(":"):
            out.append(("comment", None))
        elif block.strip():
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_events_stream_state_changes_and_progress_until_the_end(
    start_api: Callable[..., ApiServer], client: Client, settings: Settings,
    start_worker: Callable[..., Proc],
) -> None:
    server = start_api(JOBQ_API_TOKENS="tok", JOBQ_EVENTS_HEARTBEAT_S="0.2")
    job = await client.enqueue("steps", "sse", {"steps": 3, "seconds": 0.3})
    auth = {"Authorization": "Bearer tok"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert_error(await http.get(f"/jobs/{job.job_id}/events"), 401, "unauthorized")
        assert_error(await http.get("/jobs/nope/events", headers=auth), 404, "not_found")
        text = ""
        async with http.stream("GET", f"/jobs/{job.job_id}/events", headers=auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            worker: Proc | None = None
            async for chunk in stream.aiter_text():
                text += chunk
                if worker is None and ": heartbeat" in text:  # idle: heartbeats, then work
                    worker = start_worker("report-queue:1")
    frames = sse(text)
    states = [data["state"] for event, data in frames if event == "status" and data]
    assert states[0] == "waiting" and states[-1] == "completed", states
    assert "active" in states
    progress = [data["progress"]["fraction"] for _, data in frames if data and data["progress"]]
    assert progress == sorted(progress) and progress[-1] == 1.0, frames
    # 0.3 s apart, the first steps are heard on their own, as progress-only events.
    assert sum(event == "progress" for event, _ in frames) >= 2, frames
    assert frames[-1][0] == "status"  # the terminal state ends the stream


async def test_events_stream_ends_within_a_heartbeat_when_the_end_event_was_missed(
    start_api: Callable[..., ApiServer], client: Client, redis: Redis,
) -> None:
    """The job is cancelled while its queue's event stream is gone (expired, or trimmed before
    the reader saw the entry): the scripts write no event, so only the heartbeat's re-read can
    tell the client; the stream must end then, not at JOBQ_EVENTS_MAX_S."""
    server = start_api(JOBQ_EVENTS_HEARTBEAT_S="0.2", JOBQ_EVENTS_MAX_S="60")
    job = await client.enqueue("sleep", "missed", {"seconds": 0})
    stream_key = client.keys(job.queue).events
    text, cancelled = "", False
    async with (httpx.AsyncClient(base_url=server.url, timeout=30) as http, asyncio.timeout(10),
                http.stream("GET", f"/jobs/{job.job_id}/events") as live):
        async for chunk in live.aiter_text():
            text += chunk
            if "event: status" in text and not cancelled:  # the stream is open: now
                cancelled = True
                await redis.delete(stream_key)
                await admin.cancel_job(client, job.job_id, who="test")
                entries = await redis.xrange(stream_key)
                assert not any(job.job_id in f.get("ids", "") for _, f in entries), entries
    frames = sse(text)
    assert [data["state"] for event, data in frames if event == "status" and data] == [
        "waiting", "cancelled"], frames


async def test_events_stream_ends_after_its_maximum(
    start_api: Callable[..., ApiServer], client: Client,
) -> None:
    server = start_api(JOBQ_EVENTS_MAX_S="0.5")
    job = await client.enqueue("sleep", "never", {"seconds": 0})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.get(f"/jobs/{job.job_id}/events")
    assert [e for e, _ in sse(answer.text)] == ["status"]


async def test_cli_status_wait(
    settings: Settings, client: Client, start_worker: Callable[..., Proc],
) -> None:
    job = await client.enqueue("sleep", "cli", {"seconds": 0.3})
    env = process_env(settings)
    short = await asyncio.to_thread(subprocess.run, [JOBQ, "status", job.job_id, "--wait", "0.5",
                                                     "--json"], env=env, capture_output=True,
                                    text=True, timeout=60)
    assert short.returncode == 6, short.stderr
    assert '"state": "waiting"' in short.stdout
    waiting = asyncio.ensure_future(asyncio.to_thread(
        subprocess.run, [JOBQ, "status", job.job_id, "--wait"], env=env, capture_output=True,
        text=True, timeout=60))
    start_worker("report-queue:1")
    done = await waiting
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout and "progress" in done.stdout
    missing = subprocess.run([JOBQ, "status", "nope", "--wait", "1"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3 and missing.stderr.count("\n") == 1, missing.stderr


async def test_a_wait_of_a_few_microseconds_ends(client: Client) -> None:
    """A wait that runs out while the reader starts or while Redis answers still ends (it
    once hung: the cancellation of the timeout was lost inside a Redis call)."""
    job = await client.enqueue("sleep", "tiny", {"seconds": 0})
    watch = JobWatch(client)
    try:
        for timeout_s in (6.1e-05, 1e-4, 1e-3, 1e-2, 0.1):
            async with asyncio.timeout(10):
                view = await watch.wait(job.job_id, timeout_s)
            assert view.state is State.WAITING
    finally:
        await watch.close()
