"""A client generated from the OpenAPI document (``openapi-python-client``, as the README
shows) knows each task's payload: a call for the demo ``welcome-email`` task type-checks under
mypy --strict, a call with another task's payload does not, and the call works against the
real app."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import IN_PROCESS_URL

PACKAGE = "jobq_client"
BIN = Path(sys.executable).parent

GOOD_CALL = f'''
from {PACKAGE} import Client
from {PACKAGE}.api.jobs import create_job
from {PACKAGE}.models import ErrorBody, JobAccepted, WelcomeEmail, WelcomeEmailJob


def enqueue(client: Client) -> JobAccepted | ErrorBody | None:
    body = WelcomeEmailJob(type_="welcome-email", idempotency_key="signup:ada",
                           payload=WelcomeEmail(email="ada@example.com", name="Ada"))
    return create_job.sync(client=client, body=body)
'''

BAD_CALL = f'''
from {PACKAGE}.models import Flaky, WelcomeEmailJob

WelcomeEmailJob(type_="flaky", idempotency_key="k", payload=Flaky(fail_times=1))
'''


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Path]:
    """Where the client package is generated; it is unloaded after the test."""
    yield tmp_path
    sys.modules.pop(PACKAGE, None)
    for name in [m for m in sys.modules if m.startswith(f"{PACKAGE}.")]:
        sys.modules.pop(name)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def generate(doc: bytes, where: Path) -> None:
    (where / "openapi.json").write_bytes(doc)
    (where / "generator.yaml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    run = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json",
         "--output-path", PACKAGE, "--meta", "none", "--config", "generator.yaml"],
        cwd=where, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr


def mypy(where: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mypy"), "--strict", "--no-error-summary", "--cache-dir", ".mypy_cache",
         "--config-file", "/dev/null", *files],
        cwd=where, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": str(BIN), "MYPYPATH": str(where)},
    )


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_generated_client_types_each_tasks_payload(
    api: httpx.AsyncClient, generated: Path
) -> None:
    doc = await api.get("/openapi.json")
    generate(doc.content, generated)
    (generated / "good_call.py").write_text(GOOD_CALL)
    (generated / "bad_call.py").write_text(BAD_CALL)

    checked = mypy(generated, "good_call.py", "bad_call.py")
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if e.startswith("good_call.py")], checked.stdout
    bad = [e for e in errors if e.startswith("bad_call.py")]
    assert any('"type_"' in e for e in bad), checked.stdout  # "flaky" is not welcome-email's
    assert any('"payload"' in e and "WelcomeEmail" in e for e in bad), checked.stdout

    # And the call it type-checks is one the API accepts.
    sys.path.insert(0, str(generated))
    client_module: Any = importlib.import_module(PACKAGE)
    create_job: Any = importlib.import_module(f"{PACKAGE}.api.jobs.create_job")
    models: Any = importlib.import_module(f"{PACKAGE}.models")
    client = client_module.Client(base_url=IN_PROCESS_URL)
    client.set_async_httpx_client(api)
    body = models.WelcomeEmailJob(type_="welcome-email", idempotency_key="generated",
                                  payload=models.WelcomeEmail(email="ada@example.com",
                                                              name="Ada"))
    answer = await create_job.asyncio_detailed(client=client, body=body)
    assert answer.status_code == 202, answer.content
    assert isinstance(answer.parsed, models.JobAccepted) and not answer.parsed.duplicate
    job = (await api.get(f"/jobs/{answer.parsed.job_id}")).json()
    assert job["type"] == "welcome-email" and job["payload"]["name"] == "Ada"
