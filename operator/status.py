"""JobSchedule status: the Ready condition and the smallest merge patch that gets there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

READY = "Ready"


def find_condition(status: Mapping[str, Any], kind: str = READY) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def ready_condition(
    status: Mapping[str, Any], ok: bool, reason: str, message: str, generation: int, now: str
) -> dict[str, Any]:
    """The Ready condition; its ``lastTransitionTime`` moves only when True/False flips."""
    value = "True" if ok else "False"
    previous = find_condition(status)
    since = now
    if previous is not None and previous.get("status") == value:
        since = str(previous.get("lastTransitionTime") or now)
    return {
        "type": READY,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def status_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``wanted`` that differ from ``current`` (None removes a key); empty when the
    status is already right, so a reconcile that changes nothing writes nothing."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        if value is None:
            if current.get(key) is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch
