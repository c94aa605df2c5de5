"""Finishing touches on the OpenAPI document FastAPI generates, so it says exactly what this
deployment does: the task types it accepts, which operations need the bearer token, and no
422 in FastAPI's own shape (this API answers every error in ``ErrorBody``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from jobq.api.auth import OPEN_PATHS
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
        _drop_default_422(doc)
        _task_types(doc, registry)
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


def _add_schemas(doc: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """Schemas (with the models they use) that no declared parameter brought in."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema


def _task_types(doc: dict[str, Any], registry: Registry) -> None:
    """``JobCreate.type`` lists the task types this API's registry knows."""
    schemas = doc.get("components", {}).get("schemas", {})
    if "JobCreate" in schemas:
        schemas["JobCreate"]["properties"]["type"]["enum"] = sorted(t.name for t in registry)


def _security(doc: dict[str, Any]) -> None:
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {"type": "http", "scheme": "bearer"}
    for path, operations in doc.get("paths", {}).items():
        if path not in OPEN_PATHS:
            for operation in operations.values():
                operation["security"] = [{SCHEME: []}]
