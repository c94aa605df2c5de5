"""The bodies of ``POST /jobs`` as the OpenAPI document shows them: one model per registered
task, whose ``payload`` is that task's own pydantic model, joined in a union discriminated by
``type``. Clients in other languages generate their code from this, so it must say what each
task needs. (Requests are still parsed by the generic ``JobCreate`` in one pass and the task
then checks its payload: the same models, so document and behaviour agree.)"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, Field, TypeAdapter, create_model

from jobq.api.schemas import STRICT, IdempotencyKey, JobOptions
from jobq.tasks import Registry, Task

REF = "#/components/schemas/{model}"
UNION_NAME = "JobCreate"


def member_name(task_name: str) -> str:
    """``welcome-email`` -> ``WelcomeEmailJob``: a name every code generator keeps as is."""
    words = re.split(r"[^0-9A-Za-z]+", task_name)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + "Job"


def _description(task: Task) -> str:
    what = inspect.getdoc(task.handler) or inspect.getdoc(task.payload) or ""
    return (f"A `{task.name}` job, run on queue `{task.queue}` "
            f"({task.attempts} attempts unless `options.attempts` says otherwise). {what}").strip()


def member(task: Task, name: str) -> type[BaseModel]:
    """The ``POST /jobs`` body of one task."""
    tag = cast(Any, Literal)[task.name]  # a Literal of a value known only at run time
    model: type[BaseModel] = create_model(
        name,
        __config__=STRICT,
        __doc__=_description(task),
        type=(tag, Field(description="The task type.")),
        idempotencyKey=(IdempotencyKey, ...),
        payload=(task.payload, Field(description=f"The payload of `{task.name}`.")),
        options=(JobOptions | None, None),
    )
    return model


def members(registry: Registry) -> list[type[BaseModel]]:
    """One body model per task, by task name; names that collide get a number."""
    taken: set[str] = set()
    found = []
    for task in sorted(registry, key=lambda t: t.name):
        name, n = member_name(task.name), 2
        while name in taken:
            name, n = f"{member_name(task.name)}{n}", n + 1
        taken.add(name)
        found.append(member(task, name))
    return found


def union_schema(registry: Registry) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``JobCreate`` schema (``oneOf`` the members, discriminated by ``type``) and the
    schemas it refers to, by name, for ``components/schemas``."""
    models = members(registry)
    body: Any = (models[0] if len(models) == 1 else
                 Annotated[Union[tuple(models)], Field(discriminator="type")])  # noqa: UP007
    schema = TypeAdapter(body).json_schema(ref_template=REF)
    defs: dict[str, Any] = schema.pop("$defs", {})
    if "$ref" not in schema and "oneOf" not in schema:  # one member, inlined: give it its name
        defs[models[0].__name__] = schema
        schema = {"$ref": REF.format(model=models[0].__name__)}
    schema["description"] = ("A job of one of the task types this API serves; `type` decides "
                             "which, and so what `payload` must hold.")
    return schema, defs
