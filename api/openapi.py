"""Finishing touches on the OpenAPI document FastAPI generates, so it says exactly what this
deployment does: the task types it accepts with each one's payload model, its queues, which
operations need the bearer token, the 403 every state change may get from a cross-site page,
and no 422 in FastAPI's own shape (this API answers every error in ``ErrorBody``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from jobq.api.auth import OPEN_PATHS
from jobq.api.origin import SAFE_METHODS
from jobq.api.task_bodies import REF, UNION_NAME, union_schema
from jobq.tasks import Registry

SCHEME = "bearerAuth"


def customize(
    app: FastAPI, registry: Registry, *, bearer: bool, bodies: Iterable[type[BaseModel]] = ()
) -> None:
    """Wrap ``app.openapi``; the document is built once, on first request, then cached.
    ``bodies`` are the models of request bodies that routes read themselves."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        _add_schemas(doc, bodies)
        _job_bodies(doc, registry)
        _dlq_queues(doc, registry)
        _drop_default_422(doc)
        _cross_site_403(doc)
        if bearer:
            _security(doc)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_default_422(doc: dict[str, Any]) -> None:
    """FastAPI adds a 422 to every operation with parameters; routes that can answer 422
    document it themselves, with ErrorBody."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in json.dumps(answer):
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        doc.get("components", {}).get("schemas", {}).pop(name, None)


CROSS_SITE = ("A browser page of another origin sent this state change (`Origin` or "
              "`Sec-Fetch-Site` says so): refused as a cross-site request before the operation "
              "runs (code `cross_site_request`).")


def _cross_site_403(doc: dict[str, Any]) -> None:
    """SameOrigin answers 403 to any state change a cross-site page sends, whatever the route
    (routes added later included): every operation but the safe methods documents it."""
    body = {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    for operations in doc.get("paths", {}).values():
        for method, operation in operations.items():
            if method.upper() not in SAFE_METHODS:
                operation.setdefault("responses", {}).setdefault(
                    "403", {"description": CROSS_SITE, "content": body})


def _add_schemas(doc: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """Schemas (with the models they use) that no declared parameter brought in."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema


def _job_bodies(doc: dict[str, Any], registry: Registry) -> None:
    """``JobCreate``, the body of ``POST /jobs``: one member per task with its payload model.
    A user's model whose name is taken by a different schema of the API gets a new name."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    union, defs = union_schema(registry)
    renames: dict[str, str] = {}
    for name, definition in defs.items():
        if name in schemas and schemas[name] != definition:
            new, n = f"{name}Payload", 2
            while new in schemas or new in defs:
                new, n = f"{name}Payload{n}", n + 1
            renames[REF.format(model=name)] = REF.format(model=new)
    for name, definition in defs.items():
        new_ref = renames.get(REF.format(model=name))
        schemas[new_ref.rpartition("/")[2] if new_ref else name] = _renamed(definition, renames)
    schemas[UNION_NAME] = _renamed(union, renames)


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    """``node`` with every reference in ``renames`` (``$ref`` and discriminator mappings)
    pointing to its new name."""
    if isinstance(node, dict):
        return {k: renames.get(v, v) if isinstance(v, str) else _renamed(v, renames)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, renames) for v in node]
    return node


def _dlq_queues(doc: dict[str, Any], registry: Registry) -> None:
    """``GET /dlq?queue=`` takes one of the queues this API's registry knows."""
    for parameter in doc.get("paths", {}).get("/dlq", {}).get("get", {}).get("parameters", []):
        if parameter["name"] == "queue":
            parameter["schema"] = {"type": "string", "enum": registry.queues}


def _security(doc: dict[str, Any]) -> None:
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {"type": "http", "scheme": "bearer"}
    for path, operations in doc.get("paths", {}).items():
        if path not in OPEN_PATHS:
            for operation in operations.values():
                operation["security"] = [{SCHEME: []}]
