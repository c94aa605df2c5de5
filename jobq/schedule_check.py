"""Checking one schedule definition against the task registry: shared by the standalone
scheduler (entries of its YAML file) and the operator (JobSchedule specs).

``jobq.schedule`` parses and times a schedule without knowing any task; only a process holding
the registry can tell an unknown task type or a payload the task refuses, so that check lives
here, next to neither of its two callers.
"""

from __future__ import annotations

from typing import Any

from jobq.errors import InvalidPayload, UnknownTask
from jobq.schedule import ScheduleError, ScheduleSpec, parse
from jobq.tasks import Registry


def check(entry: Any, registry: Registry) -> ScheduleSpec:
    """One schedule definition as a runnable schedule, or ScheduleError (also for an unknown
    task type or a payload the task refuses)."""
    if not isinstance(entry, dict):
        raise ScheduleError("InvalidSpec", "a schedule must be a mapping")
    spec = parse(entry)
    try:
        registry.get(spec.type).validate(spec.payload)
    except UnknownTask as exc:
        raise ScheduleError("UnknownTask", str(exc)) from None
    except InvalidPayload as exc:
        details = "; ".join(f"{_dotted(d.get('loc'))}: {d.get('msg')}" for d in exc.details)
        raise ScheduleError("InvalidPayload", f"{exc}: {details}") from None
    return spec


def _dotted(loc: object) -> str:
    return ".".join(map(str, loc)) if isinstance(loc, list | tuple) else str(loc)
