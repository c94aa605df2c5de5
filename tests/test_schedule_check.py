"""``jobq.schedule_check`` is the home of the registry check that the standalone scheduler and
the operator share: neither component reaches into the other's module for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jobq.schedule import ScheduleError
from jobq.schedule_check import check
from jobq.tasks import Registry

pytestmark = pytest.mark.any_server

REPO = Path(__file__).resolve().parent.parent


def test_the_operator_does_not_import_the_standalone_scheduler() -> None:
    for path in (REPO / "operator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module != "jobq.scheduler", f"{path} imports jobq.scheduler"
            elif isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
                assert "jobq.scheduler" not in names, f"{path} imports jobq.scheduler"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("not a mapping", "InvalidSpec"),
        ({"name": "s", "type": "no-such-task", "every": "1m"}, "UnknownTask"),
        ({"name": "s", "type": "noop", "every": "1m", "payload": {"n": "many"}}, "InvalidPayload"),
    ],
)
def test_check_refuses_what_only_the_registry_can_tell(
    entry: object, reason: str, registry: Registry
) -> None:
    with pytest.raises(ScheduleError) as caught:
        check(entry, registry)
    assert caught.value.reason == reason


def test_check_accepts_a_known_task_with_a_valid_payload(registry: Registry) -> None:
    spec = check({"name": "s", "type": "noop", "every": "1m", "payload": {"n": 1}}, registry)
    assert spec.type == "noop" and spec.name == "s"
