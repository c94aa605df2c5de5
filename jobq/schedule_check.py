"""Checking one schedule definition against the task registry: shared by the standalone
scheduler (entries of its YAML file) and the operator (JobSchedule specs).

``jobq.schedule`` parses and times a schedule without knowing any task; only a process holding
the registry can tell an unknown task type or a payload the task refuses, so that check lives
here, next to neither of its two callers.
"""

from __future__ import annotations

from typing import Any

from jobq.errors import InvalidPayload, UnknownTask
from jobq.schedule import ScheduleError, ScheduleSpec, parse, workflow_nodes
from jobq.tasks import Registry


def check(entry: Any, registry: Registry) -> ScheduleSpec:
    """One schedule definition as a runnable schedule, or ScheduleError (also for an unknown
    task type or a payload the task refuses)."""
    if not isinstance(entry, dict):
        raise ScheduleError("InvalidSpec", "a schedule must be a mapping")
    spec = parse(entry)
    if spec.workflow is not None:  # parse checked the graph; here each node's job
        for node in workflow_nodes(spec):
            _check_job(registry, node.type, node.payload, f"workflow node {node.key!r}: ")
    else:
        assert spec.type is not None
        _check_job(registry, spec.type, spec.payload)
    return spec


def schedule_queue(spec: ScheduleSpec, registry: Registry) -> str:
    """The queue whose hash tag keeps the schedule's mark: its task's, or for a workflow its
    first node's."""
    if spec.workflow is not None:
        return registry.get(spec.workflow.nodes[0].type).queue
    assert spec.type is not None
    return registry.get(spec.type).queue


def _check_job(registry: Registry, type_: str, payload: dict[str, Any], where: str = "") -> None:
    try:
        registry.get(type_).validate(payload)
    except UnknownTask as exc:
        raise ScheduleError("UnknownTask", f"{where}{exc}") from None
    except InvalidPayload as exc:
        details = "; ".join(f"{_dotted(d.get('loc'))}: {d.get('msg')}" for d in exc.details)
        raise ScheduleError("InvalidPayload", f"{where}{exc}: {details}") from None


def _dotted(loc: object) -> str:
    return ".".join(map(str, loc)) if isinstance(loc, list | tuple) else str(loc)
