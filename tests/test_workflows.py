"""R24 on real worker processes: dependents released exactly once, after their dependencies'
final outcomes only, with each dependency's result; failure policies; cancel; idempotent
creation. Nodes run in two queues (wf-a, wf-b; on a cluster they live on different
primaries)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import Proc
from wfhelpers import WF_TASKS, a, b, ended, node, runs

from jobq.client import Client
from jobq.settings import Settings
from jobq.workflows import chord, group


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.txt"


@pytest.fixture
def worker(start_worker: Callable[..., Proc], effects: Path) -> Proc:
    return start_worker("wf-a:4", "wf-b:4", JOBQ_TEST_EFFECTS_FILE=str(effects))


async def test_fan_in_gets_every_result(client: Client, worker: Proc, effects: Path) -> None:
    spec = chord(group(*(a(f"part{i}", add=i) for i in range(5)), b("part5", add=5)),
                 b("sum"))
    created = await client.create_workflow("fan-in", spec)
    view = await ended(client, created.workflow_id)
    assert view.state == "succeeded", view
    total = node(view, "sum").result
    assert total["value"] == sum(range(6))
    assert sorted(total["inputs"]) == [f"part{i}" for i in range(6)]
    assert runs(effects) == {**{f"part{i}": 1 for i in range(6)}, "sum": 1}
    assert view.counts["succeeded"] == 7
