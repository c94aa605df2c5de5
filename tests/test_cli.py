"""The jobq command: output, --json shapes, and one-line errors with distinct exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import eventually, job_in, process_env

from jobq.client import Client
from jobq.embedded import free_port
from jobq.jobs import State
from jobq.settings import Settings

JOBQ = str(Path(sys.executable).with_name("jobq"))
REPO = Path(__file__).resolve().parent.parent
WELCOME = '{"email": "albert@example.com", "name": "Albert"}'


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run in the test's own folder (what they write there stays there)."""
    monkeypatch.chdir(tmp_path)


def jobq(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([JOBQ, *args], env=process_env(settings, **env), capture_output=True,
                          text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobq: error: "), result.stderr
    assert text in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""


async def test_enqueue_then_duplicate_then_status(settings: Settings, client: Client) -> None:
    first = jobq(settings, "enqueue", "welcome-email", "--key", "k1", "--payload", WELCOME)
    assert first.returncode == 0, first.stderr
    job_id, kind, queue = first.stdout.strip().split("\t")
    assert (kind, queue) == ("created", "email-queue")
    again = jobq(settings, "enqueue", "welcome-email", "--key", "k1", "--payload", WELCOME,
                 "--json")
    assert json.loads(again.stdout) == {"status": "accepted", "jobId": job_id, "duplicate": True}
    status = jobq(settings, "status", job_id, "--json")
    view = json.loads(status.stdout)
    assert (view["jobId"], view["state"], view["attempts"]) == (job_id, "waiting", 0)
    assert set(view) == {"jobId", "type", "queue", "state", "attempts", "maxAttempts",
                         "createdAt", "processedAt", "finishedAt", "failedReason", "progress"}
    assert (await client.get_job(job_id)).state is State.WAITING


def test_bad_input_is_one_line_and_a_distinct_exit_code(settings: Settings) -> None:
    assert_one_line_error(jobq(settings, "enqueue", "welcome-email", "--key", "k",
                               "--payload", "{not json"), 2, "not valid JSON")
    assert_one_line_error(jobq(settings, "enqueue", "nope", "--key", "k"), 1,
                          "unknown task type 'nope'")
    assert_one_line_error(jobq(settings, "enqueue", "welcome-email", "--key", "k",
                               "--payload", '{"email": "x"}'), 1, "payload is invalid")
    assert_one_line_error(jobq(settings, "status", "0" * 32), 3, "no job")
    assert_one_line_error(jobq(settings, "dlq", "show", "email-queue-99"), 3, "no DLQ entry")
    down = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line_error(jobq(settings, "queues", REDIS_URL=down), 4, "Redis is unreachable")
    assert_one_line_error(jobq(settings, "queues", JOBQ_LEASE_SECONDS="3"), 1,
                          "unknown setting(s): JOBQ_LEASE_SECONDS")
    assert_one_line_error(jobq(settings, "worker", "--queue", "no-such-queue",
                               "--metrics-port", "0"), 1,
                          "no task is registered on queue(s) no-such-queue")
    assert_one_line_error(jobq(settings, "worker", "--queue", "email-queue:x",
                               "--metrics-port", "0"), 1,
                          "concurrency must be a whole number")


def test_payload_errors_name_each_field_as_the_api_does(settings: Settings) -> None:
    result = jobq(settings, "enqueue", "welcome-email", "--key", "k",
                  "--payload", '{"email": "x", "extra": 1}')
    assert_one_line_error(result, 1, "payload is invalid for task 'welcome-email': ")
    line = result.stderr.strip()
    assert "email: String should match pattern" in line, line
    assert "name: Field required" in line, line
    assert "extra: Extra inputs are not permitted" in line, line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on (on every address), as dev's worker holds 9101."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_is_one_line_naming_the_flag(settings: Settings, taken_port: int) -> None:
    worker = jobq(settings, "worker", "--queue", "email-queue", "--metrics-port", str(taken_port))
    assert_one_line_error(worker, 1, f"port {taken_port} (the worker's metrics) is already in use: "
                                     "choose another with --metrics-port PORT")
    api = jobq(settings, "api", "--port", str(taken_port))
    assert_one_line_error(api, 1, f"port {taken_port} (the API) is already in use: choose another "
                                  "with --port PORT")
    operator = jobq(settings, "operator", "--standalone", "--namespace", "default",
                    "--metrics-port", str(taken_port))
    assert_one_line_error(operator, 1, f"port {taken_port} (the operator's metrics) is already in "
                                       "use: choose another with --metrics-port PORT")


def test_no_tasks_configured_is_a_start_up_error_not_the_demo(settings: Settings) -> None:
    """An empty JOBQ_TASKS must not fall back to the demo tasks (a production API that accepts
    welcome-email); the demo is JOBQ_TASKS=jobq.demo, said explicitly."""
    for args in (["api", "--port", str(free_port())],
                 ["worker", "--queue", "email-queue", "--metrics-port", "0"],
                 ["enqueue", "welcome-email", "--key", "k", "--payload", WELCOME],
                 ["scheduler", "--file", str(REPO / "examples" / "schedules.yaml")]):
        assert_one_line_error(jobq(settings, *args, JOBQ_TASKS=""), 1,
                              "no tasks configured: set JOBQ_TASKS")
    demo = jobq(settings, "enqueue", "welcome-email", "--key", "k", "--payload", WELCOME,
                JOBQ_TASKS="jobq.demo")
    assert demo.returncode == 0, demo.stderr


async def test_dlq_list_and_replay_print_the_api_bodies(
    settings: Settings, client: Client, start_worker
) -> None:
    start_worker("report-queue:1")
    job_id = (await client.enqueue("flaky", "f", {"failTimes": 9}, attempts=1)).job_id
    failed = await eventually(lambda: job_in(client, job_id, State.FAILED), what="a DLQ entry")
    page = json.loads(jobq(settings, "dlq", "list", "--json").stdout)
    assert page["nextCursor"] is None and [e["dlqId"] for e in page["items"]] == [
        failed.deadLetterId]
    replay = jobq(settings, "dlq", "replay", str(failed.deadLetterId), "--key", "r1", "--json")
    body = json.loads(replay.stdout)  # stdout is only the body: logs go to stderr
    assert set(body) == {"status", "jobId", "replayedFromJobId", "dlqId"}
    assert (body["replayedFromJobId"], body["dlqId"]) == (job_id, failed.deadLetterId)
    assert any(json.loads(line).get("event") == "job.replayed"
               for line in replay.stderr.splitlines() if line.startswith("{"))
    same = jobq(settings, "dlq", "replay", str(failed.deadLetterId), "--key", "r1", "--json")
    assert json.loads(same.stdout)["jobId"] == body["jobId"]


def test_invalid_setting_names_the_variable_not_its_value(settings: Settings) -> None:
    result = jobq(settings, "queues", JOBQ_MAX_BODY_BYTES="s3cret-looking-value")
    assert_one_line_error(result, 1, "invalid settings: JOBQ_MAX_BODY_BYTES")
    assert "s3cret-looking-value" not in result.stderr


SHOP_TASKS = '''
from pydantic import BaseModel
from jobq import JobContext, task


class Invoice(BaseModel):
    invoiceId: str


@task("send-invoice", queue="billing", payload=Invoice)
async def send_invoice(ctx: JobContext, payload: Invoice) -> dict:
    return {"sent": payload.invoiceId}
'''


async def test_tasks_of_the_project_in_the_cwd_are_found(
    settings: Settings, start_worker, tmp_path: Path
) -> None:
    """JOBQ_TASKS may name a module of the folder jobq runs in, as with celery -A."""
    (tmp_path / "shop_tasks.py").write_text(SHOP_TASKS)
    tasks = "jobq.demo,shop_tasks"
    created = jobq(settings, "enqueue", "send-invoice", "--key", "inv-1", "--payload",
                   '{"invoiceId": "A-1"}', "--json", JOBQ_TASKS=tasks)
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["jobId"]
    start_worker("billing:1", JOBQ_TASKS=tasks)

    async def completed() -> dict[str, object] | None:
        result = jobq(settings, "status", job_id, "--full", JOBQ_TASKS=tasks)
        record = json.loads(result.stdout) if result.returncode == 0 else {}
        return record if record.get("state") == "completed" else None

    record = await eventually(completed, what="the project's task to run")
    assert record["result"] == {"sent": "A-1"}


async def test_the_demo_outbox_is_a_demo_setting_that_env_files_may_hold(
    settings: Settings, client: Client, start_worker, tmp_path: Path
) -> None:
    """JOBQ_DEMO_OUTBOX belongs to jobq.demo, not to the core Settings, and a .env may set it
    without the core refusing it as an unknown setting."""
    (tmp_path / ".env").write_text("JOBQ_DEMO_OUTBOX=sent/emails.jsonl\n")
    start_worker("email-queue:1")  # cwd tmp_path: reads the .env
    job_id = (await client.enqueue("welcome-email", "outbox", json.loads(WELCOME))).job_id
    await eventually(lambda: job_in(client, job_id, State.COMPLETED), what="the email to go out")
    assert job_id in (tmp_path / "sent" / "emails.jsonl").read_text()
    assert "outbox" not in Settings.model_fields
