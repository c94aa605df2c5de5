"""``jobq dev`` as a user runs it: embedded Valkey, API, workers, scheduler; Ctrl-C stops it all
and leaves no process behind; jobs survive a restart (AOF); a dying child stops everything."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from jobq.embedded import free_port
from jobq.ports import is_port_free

pytestmark = [pytest.mark.any_server, pytest.mark.slow, pytest.mark.timeout(240)]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


def ports_free(*ports: int) -> bool:
    return all(is_port_free(port) for port in ports)


def free_run(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the kernel's ephemeral range.

    The runs of one test reuse the same ports, stopped and started again; inside the ephemeral
    range, a connection of a test running alongside could take one in between (it happened:
    "port 50196 ... is already in use" on the second run). Below it, only a bind to that very
    port can."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        base = random.randrange(20_000, ephemeral_low - count)
        if ports_free(*range(base, base + count)):
            return base
    raise RuntimeError("no run of free ports")


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(todo.pop())],
                             capture_output=True, text=True).stdout
        children = {int(p) for p in out.split()}
        todo += children - found
        found |= children
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


REPO = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Dev:
    """One ``jobq dev`` run in ``cwd`` with REDIS_URL unset."""

    def __init__(self, cwd: Path, api_port: int, metrics_base: int, redis_port: int,
                 *args: str, **extra_env: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBQ_", "REDIS_URL"))}
        env.update(JOBQ_SHUTDOWN_GRACE_S="5", PYTHONUNBUFFERED="1", **extra_env)
        self.log = cwd / f"dev-{time.monotonic_ns()}.log"
        self.url = f"http://127.0.0.1:{api_port}"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [str(Path(sys.executable).with_name("jobq")), "dev", "--port", str(api_port),
                 "--metrics-port-base", str(metrics_base), "--redis-port", str(redis_port),
                 *args],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"jobq dev exited early:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self) -> None:
        """As a reader does: wait for the banner; its API must answer by then."""
        wait_for(lambda: "jobq dev: API" in self.output() or self.popen.poll() is not None,
                 "jobq dev's banner", START_TIMEOUT_S)
        assert self.popen.poll() is None, f"jobq dev exited early:\n{self.output()}"
        assert self.healthy(), f"the banner came before the API answered: {self.output()}"

    def state(self, job_id: str) -> str:
        response = httpx.get(f"{self.url}/jobs/{job_id}/status", timeout=5)
        response.raise_for_status()
        return str(response.json()["state"])

    def refused(self) -> str:
        """The one line a run that refused to start printed (it must exit 1 at once)."""
        assert self.popen.wait(STOP_TIMEOUT_S) == 1, self.output()
        lines = self.output().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("jobq: error: "), self.output()
        return lines[0]

    def kill(self) -> None:
        if self.popen.poll() is None:
            family = descendants(self.popen.pid)
            os.killpg(self.popen.pid, signal.SIGKILL)
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.popen.wait()


@pytest.fixture
def dev_runs(tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    """Start ``jobq dev`` runs in ``tmp_path``, all on the same ports (API, 4 metrics, Valkey)."""
    base = free_run(6)  # API, four workers' metrics, Valkey
    ports = (base, base + 1, base + 5)
    runs: list[Dev] = []
    # Like the repo root, where `make dev` runs: a jobq/ source folder in the cwd must not
    # hide the installed package from the children.
    (tmp_path / "jobq").symlink_to(REPO / "jobq")

    def start(*args: str, **env: str) -> Dev:
        runs.append(Dev(tmp_path, *ports, *args, **env))
        return runs[-1]

    yield start
    for run in runs:
        run.kill()


def test_dev_runs_everything_stops_cleanly_keeps_jobs_and_stops_when_a_child_dies(
    dev_runs: Callable[..., Dev], tmp_path: Path
) -> None:
    dev = dev_runs()
    dev.wait_ready()
    assert "jobq dev: API http://127.0.0.1:" in dev.output()
    assert f"dashboard {dev.url}/ui" in dev.output()
    assert httpx.get(f"{dev.url}/ui", timeout=5).status_code == 200
    created = httpx.post(f"{dev.url}/jobs", timeout=5, json={
        "type": "welcome-email", "idempotencyKey": "dev-test-welcome",
        "payload": {"email": "ada@example.com", "name": "Ada"},
    })
    assert created.status_code == 202, created.text
    job_id = created.json()["jobId"]
    wait_for(lambda: dev.state(job_id) == "completed", "the job to complete", 30)
    assert "ada@example.com" in (tmp_path / ".jobq" / "outbox.jsonl").read_text()

    family = descendants(dev.popen.pid)
    assert len(family) >= 6, family  # valkey, api, three workers, scheduler
    dev.popen.send_signal(signal.SIGINT)
    assert dev.popen.wait(STOP_TIMEOUT_S) == 0, dev.output()
    assert "Traceback" not in dev.output()
    assert not [pid for pid in family if running(pid)]

    again = dev_runs()  # same cwd: the Valkey replays its AOF
    again.wait_ready()
    assert again.state(job_id) == "completed"

    # A child that dies stops everything (on this second run: one start fewer; SIGTERM's
    # clean stop is checked at the end of the next test).
    family = descendants(again.popen.pid)
    scheduler = next(pid for pid in family
                     if b"scheduler" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(scheduler, signal.SIGKILL)
    assert again.popen.wait(STOP_TIMEOUT_S) != 0
    assert "scheduler exited" in again.output()
    assert not [pid for pid in family if running(pid)]


SHOP_TASKS = """
from pydantic import BaseModel
from jobq import JobContext, task


class Invoice(BaseModel):
    invoiceId: str


@task("send-invoice", queue="billing", payload=Invoice)
async def send_invoice(ctx: JobContext, payload: Invoice) -> dict:
    return {"sent": payload.invoiceId}
"""


def test_own_tasks_beside_the_demo_one_dev_per_folder_and_reset(
    dev_runs: Callable[..., Dev], tmp_path: Path
) -> None:
    """JOBQ_TASKS adds the user's module to the demo (its queue gets a worker, the API takes
    its jobs); a second dev in the same folder is refused in one line; --reset starts clean."""
    (tmp_path / "shop_tasks.py").write_text(SHOP_TASKS)
    dev = dev_runs(JOBQ_TASKS="jobq.demo,shop_tasks")
    dev.wait_ready()
    assert "export REDIS_URL=redis://127.0.0.1:" in dev.output()
    assert "JOBQ_TASKS=jobq.demo,shop_tasks" in dev.output()
    ids = {}
    for type_, payload in (("send-invoice", {"invoiceId": "A-1"}),
                           ("welcome-email", {"email": "ada@example.com", "name": "Ada"})):
        created = httpx.post(f"{dev.url}/jobs", timeout=5, json={
            "type": type_, "idempotencyKey": f"dev-{type_}", "payload": payload})
        assert created.status_code == 202, created.text
        ids[type_] = created.json()["jobId"]
    for job_id in ids.values():
        wait_for(lambda j=job_id: dev.state(j) == "completed", "the jobs to complete", 30)

    second = dev_runs()
    line = second.refused()
    assert f"jobq dev is already running in {tmp_path} (pid {dev.popen.pid})" in line, line
    assert dev.healthy()  # the first run is untouched
    dev.popen.send_signal(signal.SIGINT)
    assert dev.popen.wait(STOP_TIMEOUT_S) == 0, dev.output()

    clean = dev_runs("--reset")
    clean.wait_ready()
    assert "--reset: cleared" in clean.output()
    gone = httpx.get(f"{clean.url}/jobs/{ids['welcome-email']}/status", timeout=5)
    assert gone.status_code == 404, gone.text
    outbox = tmp_path / ".jobq" / "outbox.jsonl"  # the demo schedule may have sent one since
    assert not outbox.exists() or "ada@example.com" not in outbox.read_text()
    clean.popen.send_signal(signal.SIGTERM)
    assert clean.popen.wait(STOP_TIMEOUT_S) == 0, clean.output()


def test_a_taken_port_is_one_line_naming_its_flag(tmp_path: Path) -> None:
    """Checked before anything starts: no Valkey, no child, no traceback."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        cases = [((port, free_run(3), free_port()), f"port {port} (the API)", "--port PORT"),
                 ((free_port(), port, free_port()), f"port {port} (metrics of worker email-queue)",
                  "--metrics-port-base PORT"),
                 ((free_port(), free_run(3), port), f"port {port} (the embedded Valkey)",
                  "--redis-port PORT")]
        for ports, what, flag in cases:
            line = Dev(tmp_path, *ports).refused()
            assert f"{what} is already in use: choose another with {flag}" in line, line
    assert not (tmp_path / ".jobq" / "valkey").exists()
