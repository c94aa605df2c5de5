"""A task's result type, how the worker encodes a result and how a reader decodes it."""

from __future__ import annotations

import functools
import typing
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from jobq.tasks import Task


def _to_json(value: Any) -> Any:
    """orjson's fallback: pydantic models (a typed task's result) as their JSON form."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def encode_result(result: Any) -> str:
    """The JSON a worker stores as a job's result. Plain first: passing orjson a ``default``
    costs every call ~100 ns (bench/perjob_delta.py), and most results are dicts."""
    try:
        return orjson.dumps(result).decode()
    except orjson.JSONEncodeError:
        return orjson.dumps(result, default=_to_json).decode()


@functools.lru_cache(maxsize=256)
def _return_type(handler: Any) -> Any:
    """The handler's return annotation, resolved; None when it has none or it does not resolve
    (a name only imported under TYPE_CHECKING)."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # any error evaluating a user's annotations: no type, no validation
        return None
    return hints.get("return")


@functools.lru_cache(maxsize=256)
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def result_adapter(task: Task[Any, Any]) -> TypeAdapter[Any] | None:
    """What validates the result of ``task``'s jobs: its ``result`` type, else its handler's
    return annotation, else nothing (the decoded JSON as it is)."""
    kind: Any = task.result if task.result is not None else _return_type(task.handler)
    if kind is None or kind is Any:
        return None
    try:
        return _adapter(kind)
    except TypeError:  # unhashable or not a type pydantic knows: leave the result as it is
        return None
