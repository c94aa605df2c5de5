"""Schemathesis 4 over the live API's own OpenAPI document with every check (``--checks
all``) and every phase: examples, coverage, fuzzing, and the stateful phase, which follows the
document's links (``GET /dlq`` -> the routes taking a ``dlq_id``) to reach real DLQ entries.
Any finding fails the test. One run has a fixed seed, so CI is reproducible; one has a random
seed, printed, so each run also explores something new: that one runs only the phases the seed
steers (fuzzing, stateful). The coverage phase draws its values with a seed of its own (0:
``schemathesis/generation/hypothesis/examples.py``), so it would send the fixed run's requests
again; the examples phase reads the document's examples, seed or not.

A real ``jobq api`` process with auth on (the security scheme is exercised too): the fuzzer is
an outside HTTP client like any other."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_fixtures import ApiServer
from fixtures import Proc, eventually

from jobq.settings import Settings

pytestmark = pytest.mark.any_server

TOKEN = "schema-test-token"
CI_SEED = 20261201
MAX_EXAMPLES = 40  # per operation and phase; about 2,600 cases fixed, 1,100 random (printed)
RUN_TIMEOUT_S = 420
SCHEMATHESIS_CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429", "5xx"]

# POST /workflows: whether a dependency names a node of the same request, and whether the
# graph has a cycle, cannot be said in JSON Schema; such schema-valid graphs are refused with
# the documented 422 invalid_workflow. Only this operation may answer valid data with a 422.
[[operations]]
include-operation-id = "create_workflow"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409",
                                                     "422", "429", "5xx"]
"""


ALL_PHASES = "examples,coverage,fuzzing,stateful"
SEEDED_PHASES = "fuzzing,stateful"


def fuzz(server: ApiServer, schema: Path, seed: int,
         phases: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    return subprocess.run(
        [str(st), "run", str(schema), "--url", server.url, "-H", f"Authorization: Bearer {TOKEN}",
         "--checks", "all", "--phases", phases,
         "--max-examples", str(MAX_EXAMPLES), "--seed", str(seed), "--request-timeout", "10",
         "--generation-database", "none", "--no-color"],
        cwd=schema.parent, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )


def summary(run: subprocess.CompletedProcess[str]) -> str:
    """The counts schemathesis closes with (``1171 generated, 1171 passed, ...``) and how many
    of the document's links the stateful phase followed."""
    cases = re.search(r"^\s*(\d+ generated.*)$", run.stdout, re.MULTILINE)
    links = re.search(r"API Links:\s*(.*)$", run.stdout, re.MULTILINE)
    return (f"{cases.group(1) if cases else '(no case count)'}; "
            f"links {links.group(1) if links else '(none followed)'}")


@pytest.mark.slow
@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 120)
async def test_schemathesis_with_every_check_finds_nothing(
    start_api: Callable[..., ApiServer], start_worker: Callable[..., Proc], settings: Settings,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    demo = settings.model_copy(update={"tasks": ["jobq.demo"]})
    # Long polls and event streams of the fuzzer's waiting jobs end within 0.1 s, not 30 s and
    # 300 s (past the fuzzer's request timeout): the answers are the same, only sooner.
    server = start_api(demo, JOBQ_API_TOKENS=TOKEN, JOBQ_STATUS_WAIT_MAX_S="0.1",
                       JOBQ_EVENTS_MAX_S="0.1")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10.0) as http:
        # Real DLQ entries for the stateful phase to find through GET /dlq's links.
        for n in range(3):
            created = await http.post("/jobs", json={
                "type": "flaky", "idempotencyKey": f"doomed-{n}",
                "payload": {"failTimes": 1}, "options": {"attempts": 1}})
            assert created.status_code == 202, created.text
        worker = start_worker("report-queue:3", JOBQ_TASKS="jobq.demo")

        async def dead() -> bool:
            return len((await http.get("/dlq")).json()["items"]) == 3

        await eventually(dead, timeout=30, what="3 DLQ entries")
        worker.stop()  # the fuzzer's jobs must never run (cleanup-temp deletes files)
        schema = await http.get("/openapi.json")
    assert schema.status_code == 200, schema.text
    (tmp_path / "openapi.json").write_bytes(schema.content)
    # A body over the API's size limit is refused with 413 before it is parsed: a rejection
    # too, which schemathesis's list of rejecting statuses leaves out (a random seed sent a
    # batch of more than the maximum jobs, over 1 MB, and counted the 413 as accepted).
    (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)

    random_seed = random.SystemRandom().randrange(2**32)
    runs = {seed: fuzz(server, tmp_path / "openapi.json", seed, phases)
            for seed, phases in ((CI_SEED, ALL_PHASES), (random_seed, SEEDED_PHASES))}
    with capsys.disabled():
        for seed, run in runs.items():
            kind = "fixed" if seed == CI_SEED else "random"
            print(f"\nschemathesis, {kind} seed {seed}: {summary(run)}")
    for seed, run in runs.items():
        assert run.returncode == 0, f"seed {seed}:\n{run.stdout[-8000:]}{run.stderr[-2000:]}"
        assert " found " not in summary(run) and "(no case count)" not in summary(run), run.stdout
        assert "(none followed)" not in summary(run), run.stdout[-3000:]
    assert "Traceback" not in server.proc.output()
