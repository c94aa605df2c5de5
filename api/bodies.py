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


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its own body: documents ``model`` as the
    required JSON request body, as FastAPI would for a declared body parameter (the schema
    itself is added by ``api.openapi.customize``)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


async def read_json(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body in one pass; errors look like FastAPI's own."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and
                                           kind.endswith("+json")):
        raise HTTPException(415, "the request body must be JSON (Content-Type: application/json)")
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
