"""The README's Quick start, taken from the README itself and run as a reader would, in order."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import eventually, process_env

from jobq.client import Client
from jobq.settings import Settings
from jobq.tasks import load_registry
from jobq.testing import JobqEnv

pytestmark = pytest.mark.any_server

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
JOBQ = str(Path(sys.executable).with_name("jobq"))


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def curl_welcome_body() -> dict[str, object]:
    """The JSON body of the Quick start's first curl (the seed's welcome-email)."""
    first = next(b for b in blocks("console") if "curl -s -X POST" in b and "welcome-email" in b)
    body = re.search(r"-d '(\{.*?\})'", first, flags=re.S)
    assert body, first
    return dict(json.loads(body.group(1)))


def python_block(marker: str) -> str:
    return next(b for b in blocks("python") if marker in b)


async def test_the_sync_client_snippet_follows_the_curl_example_without_a_conflict(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Reading in order: the curl example's job exists when the SyncClient snippet runs, and
    the snippet runs twice (a walkthrough repeated) without an IdempotencyConflict."""
    body = curl_welcome_body()
    await client.enqueue(str(body["type"]), str(body["idempotencyKey"]), dict(body["payload"]))  # type: ignore[call-overload]
    script = tmp_path / "snippet.py"
    script.write_text(python_block("SyncClient"))
    env = process_env(settings, JOBQ_TASKS="jobq.demo")
    runs = [subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                           text=True, timeout=60) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout.split()[1] == "created" and runs[1].stdout.split()[1] == "duplicate"


def test_no_command_names_a_dlq_id_that_only_a_fresh_checkout_has() -> None:
    """DLQ ids count up and persist in .jobq/: commands take the id from the listing."""
    commands = [line for b in blocks("console") for line in b.splitlines()
                if line.startswith("$ ")]
    assert not [c for c in commands if re.search(r"dlq(/| replay )[a-z-]+-\d+", c)], commands


def test_every_link_and_picture_of_the_readme_is_in_the_repository() -> None:
    """Relative links and images (the dashboard's and the trace's pictures) name files that
    exist: a picture renamed or never committed shows as a broken image."""
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", README)
               if not re.match(r"[a-z]+:|#", t)]
    assert "docs/trace-in-jaeger.png" in targets
    assert [t for t in targets if not (REPO / t).is_file()] == []


async def test_the_own_tasks_example_runs_beside_the_demo(
    settings: Settings, start_worker, tmp_path: Path
) -> None:
    """myapp/tasks.py as the README gives it, enqueued with the README's own command line."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(python_block("send-invoice"))
    (tmp_path / "myapp" / "observability.py").write_text(python_block("worker_lifespan"))
    line = next(line for b in blocks("console") for line in b.splitlines()
                if line.startswith("$ ") and "jobq enqueue send-invoice" in line)
    words = shlex.split(line[2:])
    assignments = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    args = words[len(assignments) + 1:]  # after the variables and `jobq`
    tasks = assignments["JOBQ_TASKS"]
    env = process_env(settings, JOBQ_TASKS=tasks)

    def jobq(*more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JOBQ, *more], env=env, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    created = jobq(*args, "--json")
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["jobId"]
    # With the README's lifespan and middleware module: a real worker enters and runs them.
    start_worker("billing:1", JOBQ_TASKS=f"{tasks},myapp.observability")

    async def completed() -> dict[str, object] | None:
        status = jobq("status", job_id, "--full")
        record = json.loads(status.stdout) if status.returncode == 0 else {}
        return record if record.get("state") == "completed" else None

    done = await eventually(completed, timeout=30, what="the README's own task to run")
    assert done["result"] == {"invoiceId": "A-2", "charged": True}
    # The typed producer, as the README runs it (the worker above runs its job).
    (tmp_path / "myapp" / "produce.py").write_text(python_block("async with Client.open()"))
    produced = subprocess.run([sys.executable, "-m", "myapp.produce"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.split()[1] == "True", produced.stdout


def test_the_test_of_your_own_task_passes_as_written(tmp_path: Path) -> None:
    """The README's tests/test_tasks.py, run as the README says, by the installed plugin."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(python_block("send-invoice"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tasks.py").write_text(python_block("jobq.testing"))
    command = next(re.search(r"`(python -m pytest [^`]+)`", line).group(1)  # type: ignore[union-attr]
                   for line in README.splitlines() if "`python -m pytest " in line)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBQ_", "REDIS_URL"))}
    # Without the dev tools' heavy plugins (a user's environment has none of them).
    quiet = ["-p", "no:xdist", "-p", "no:schemathesis", "-p", "no:hypothesispytest",
             "-p", "no:anyio", "-p", "no:cacheprovider"]
    run = subprocess.run([sys.executable, *shlex.split(command)[1:], "-q", *quiet],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout, run.stdout


async def test_the_fastapi_app_and_the_worker_extras_run_as_written(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """myapp/web.py serves through the app's lifespan and dependency; myapp/observability.py
    registers its lifespan and middleware beside the tasks, and jobs run with them."""
    import httpx

    (tmp_path / "myapp").mkdir()
    for name, marker in (("tasks", "send-invoice"), ("web", "jobq_lifespan"),
                         ("observability", "worker_lifespan")):
        (tmp_path / "myapp" / f"{name}.py").write_text(python_block(marker))
    for name in [n for n in os.environ if n.startswith("JOBQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("JOBQ_KEY_PREFIX", settings.key_prefix)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        app = importlib.import_module("myapp.web").app
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
            answer = await http.post("/invoices/A-9")
        assert answer.status_code == 200, answer.text
        job = await client.get_job(answer.json()["jobId"])
        assert (job.type, job.payload) == ("send-invoice", {"invoiceId": "A-9"})
        registry = load_registry(["myapp.tasks", "myapp.observability"])
        assert registry.lifespan is not None and len(registry.middleware) == 1
        async with JobqEnv.start(settings.redis_url, registry) as env:
            handle = await env.enqueue("send-invoice", "invoice-A-10", {"invoiceId": "A-10"})
            await env.drain()
            assert (await env.client.get_job(handle.job_id)).result == {
                "invoiceId": "A-10", "charged": True}
    finally:
        for name in [n for n in sys.modules if n == "myapp" or n.startswith("myapp.")]:
            del sys.modules[name]
