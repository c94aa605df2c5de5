"""Lifecycle log lines (structlog, configured by jobq): the fields they always had, written
buffered but never lost (a worker leaving through os._exit writes its last lines first); and an
application's own structlog configuration, when jobq is told to leave structlog alone."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
import structlog
from fixtures import Proc, events, eventually, job_in, logged
from redis.asyncio import Redis

from jobq import logs
from jobq.client import Client
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import load_registry

pytestmark = pytest.mark.any_server


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure_logging("info", "json", out)
    yield out
    structlog.reset_defaults()
    logs.configure_logging("info", "json")


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_line_has_context_fields_event_level_and_utc_timestamp(stream: io.StringIO) -> None:
    log = logs.get_logger("t").bind(queue="q", worker="w").bind(jobId="j")
    log.info("job.completed", durationS=0.5, extra={"a": [1]}, obj=object())
    logs.get_logger("t").debug("job.hidden")  # below the level: never written
    logs.flush()
    [line] = lines(stream)
    assert list(line)[:5] == ["queue", "worker", "jobId", "durationS", "extra"]
    assert (line["event"], line["level"], line["extra"]) == ("job.completed", "info", {"a": [1]})
    assert str(line["obj"]).startswith("<object object")
    stamp = str(line["timestamp"])
    assert stamp.endswith("Z") and len(stamp) == len("2026-01-01T00:00:00.000000Z")
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - datetime.now().timestamp()) < 60


def test_exception_carries_the_traceback_and_is_written_at_once(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logs.get_logger("t").exception("worker.fetch_error")
    [line] = lines(stream)  # no flush(): errors are not buffered
    assert line["level"] == "error" and "ValueError: boom" in str(line["exception"])


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_are_written_in_batches_not_one_write_each() -> None:
    out = CountingStream()
    logs.configure_logging("info", "json", out)
    try:
        for n in range(200):
            logs.get_logger("t").info("job.started", n=n)
        logs.flush()
    finally:
        logs.configure_logging("info", "json")
    assert [line["n"] for line in lines(out)] == list(range(200))
    assert out.writes <= 3  # the final flush, and at most a background flush or two between


async def test_buffered_lines_reach_the_stream_without_a_flush(stream: io.StringIO) -> None:
    logs.get_logger("t").info("job.started")

    async def written() -> bool:
        return stream.getvalue() != ""

    await eventually(written, timeout=5, what="the background flush")
    assert [line["event"] for line in lines(stream)] == ["job.started"]


def test_console_format_is_one_readable_line(stream: io.StringIO) -> None:
    logs.configure_logging("info", "console", stream)
    logs.get_logger("t").bind(queue="q").info("worker.started", concurrency=4)
    logs.flush()
    text = stream.getvalue()
    assert text.count("\n") == 1 and "worker.started" in text and "concurrency=4" in text
    assert "queue='q'" in text


def test_jobq_loggers_are_structlog_loggers(stream: io.StringIO) -> None:
    log = logs.get_logger("t").bind(queue="q")
    assert isinstance(log, structlog.BoundLoggerBase)
    with structlog.testing.capture_logs() as captured:  # a structlog tool sees jobq's events
        logs.get_logger("t").bind(queue="q").info("job.started", attempt=1)
    assert captured == [{"queue": "q", "attempt": 1, "event": "job.started", "log_level": "info"}]


def test_format_structlog_leaves_the_application_configuration_in_place(
    stream: io.StringIO,
) -> None:
    seen: list[dict[str, object]] = []

    def collect(_logger: object, _method: str, event_dict: dict[str, object]) -> str:
        seen.append(dict(event_dict))
        return ""

    structlog.configure(processors=[collect], logger_factory=structlog.ReturnLoggerFactory(),
                        wrapper_class=structlog.make_filtering_bound_logger(0))
    logs.configure_logging("info", "structlog", stream)  # before or after the app's: no change
    log = logs.get_logger("t").bind(jobId="j")
    log.debug("job.debugged")  # the application's level (debug), not jobq's info
    log.info("job.started")
    logs.flush()
    assert seen == [{"jobId": "j", "event": "job.debugged"}, {"jobId": "j", "event": "job.started"}]
    assert stream.getvalue() == ""


async def test_worker_lines_follow_the_application_structlog_configuration(
    settings: Settings, redis: Redis, start_worker: Callable[..., Proc],
) -> None:
    """JOBQ_LOG_FORMAT=structlog: the tasks module's structlog.configure renders jobq's lifecycle
    lines, with their job context, and the job's own ctx.log lines."""
    app_settings = settings.model_copy(update={"tasks": ["structlogtasks"]})
    client = Client(redis, load_registry(app_settings.tasks), app_settings)
    worker = start_worker("app-logs-queue:1", JOBQ_TASKS="structlogtasks",
                          JOBQ_LOG_FORMAT="structlog")
    job_id = (await client.enqueue("app-logs", "app", {})).job_id
    await eventually(lambda: job_in(client, job_id, State.COMPLETED), what="the job to complete")
    [completed] = await logged(worker, "job.completed")
    [hello] = events(worker, "app.hello")
    for line in (completed, hello):
        assert line["app"] == "structlogtasks" and "timestamp" not in line, line
        assert (line["jobId"], line["queue"], line["attempt"]) == (job_id, "app-logs-queue", 1)
    assert hello["n"] == 1
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 30) == 0


async def test_worker_writes_its_last_lines_before_exiting(
    client: Client, start_worker: Callable[..., Proc],
) -> None:
    worker = start_worker("bench-queue:1")
    job_id = (await client.enqueue("noop", "last-lines", {"n": 1})).job_id
    await eventually(lambda: job_in(client, job_id, State.COMPLETED), what="the job to complete")
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 30) == 0
    names = [e["event"] for e in events(worker)]
    assert "job.completed" in names and names[-1] == "worker.stopped", names
