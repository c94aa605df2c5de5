"""Request bodies a route reads itself: one pydantic-core call parses and validates the JSON,
where FastAPI's generic body handling costs more than the rest of the hot path (POST /jobs).
Errors and the OpenAPI document come out exactly as for a declared body parameter."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)


def json_body(schema_name: str, *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its own body: documents the schema named
    ``schema_name`` as its JSON request body, as FastAPI would for a declared body parameter
    (a schema FastAPI does not know of is added by ``api.openapi.customize``)."""
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": ref}}}}


async def read_json(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body in one pass, strictly (no ``"5"`` or ``true`` taken for
    a number); errors look like FastAPI's own."""
    return _validate(model, await _json_bytes(request))


async def read_optional_json(request: Request, model: type[M]) -> M | None:
    """As ``read_json``, for a body that may be left out (no bytes at all)."""
    raw = await request.body()
    if not raw:
        return None
    return _validate(model, await _json_bytes(request))


async def _json_bytes(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and
                                           kind.endswith("+json")):
        raise HTTPException(415, "the request body must be JSON (Content-Type: application/json)")
    return await request.body()


def _validate(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
