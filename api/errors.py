"""Every failure leaves the API in one shape, ``{"error": {"code", "message", "details"}}``:
FastAPI's own 404/405/422 included, and Redis outages (or a Redis full to its ``maxmemory``,
refusing writes) become 503 + ``Retry-After``, never 500."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from redis.exceptions import OutOfMemoryError
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from jobq.api.schemas import ErrorBody
from jobq.connection import REDIS_DOWN, NotReplicated
from jobq.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidPayload,
    JobExpired,
    NotFound,
    UnknownTask,
)
from jobq.logs import get_logger
from jobq.workflows.graph import WorkflowInvalid
from jobq.workflows.reopen import WorkflowBusy

RETRY_AFTER_S = 2  # what a 503 tells clients to wait: about one reconnect backoff step
OUTAGE_LOG_EVERY_S = 10.0  # one warning per this many seconds while Redis is away, not per request

log = get_logger("jobq.api")

CODES = {
    400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_error", 503: "unavailable",
}

DESCRIPTIONS = {
    401: "Missing or wrong bearer token (only when API tokens are configured).",
    404: "No such resource.",
    409: "The idempotency key was already used with another type or payload.",
    410: "The job existed but its record was trimmed (finished jobs are kept by count and "
         "age, JOBQ_COMPLETED_* / JOBQ_FAILED_*); its idempotency key is still remembered.",
    413: "The request body is larger than the configured limit.",
    415: "The request body is not JSON (Content-Type must be application/json).",
    422: "The request is invalid (missing fields, unknown task type, invalid payload...).",
    503: "Redis is unreachable (on a cluster: the slot has no primary now), Redis is full "
         "(code redis_out_of_memory: it refuses writes at its maxmemory), or a write was not "
         "confirmed by JOBQ_ACK_REPLICAS replicas in time (code not_replicated: the job was "
         "possibly created); retry after the number of seconds in Retry-After.",
}

HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of a route's error statuses, for an accurate OpenAPI."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorBody, "description": DESCRIPTIONS[status]}
        if status in HEADERS:
            out[status]["headers"] = HEADERS[status]
    return out


def error_bytes(code: str, message: str, details: list[Any] | None = None) -> bytes:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    try:
        return orjson.dumps(body)
    except TypeError:  # text orjson refuses (lone surrogates): escape it instead of failing
        return json.dumps(body, ensure_ascii=True, default=str).encode()


def error_response(
    status: int, code: str, message: str, details: list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(error_bytes(code, message, details), status, headers,
                    media_type="application/json")


def unavailable(message: str = "Redis is unreachable, retry later") -> Response:
    return error_response(503, "redis_unavailable", message,
                          headers={"Retry-After": str(RETRY_AFTER_S)})


# What a refused job answers, by the error the core raised (POST /jobs and each batch item).
JOB_ERRORS: dict[type[Exception], tuple[int, str]] = {
    UnknownTask: (422, "unknown_task"),
    InvalidPayload: (422, "invalid_payload"),
    IdempotencyConflict: (409, "conflict"),
}


def job_error(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The status and ``error`` object a refused job answers, or None for other errors."""
    for kind, (status, code) in JOB_ERRORS.items():
        if isinstance(exc, kind):
            details = exc.details if isinstance(exc, InvalidPayload) else []
            return status, {"code": code, "message": str(exc), "details": details}
    return None


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
         "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]


Handler = Callable[[Request, Any], Awaitable[Response]]


def allowed_methods(request: Request) -> str:
    """The methods the OpenAPI document lists for this path. Starlette's 405 names only the
    first route whose path matches, but a path may have several (GET and DELETE /dlq/{dlq_id});
    the most literal template wins (/dlq/replay over /dlq/{dlq_id}), as a reader expects."""
    path = request.scope["path"]
    matching = [(template.count("/") - template.count("{"), operations)
                for template, operations in request.app.openapi()["paths"].items()
                if compile_path(template)[0].match(path)]
    if not matching:
        return ""
    best = max(literal for literal, _ in matching)
    return ", ".join(sorted({method.upper() for literal, operations in matching
                             if literal == best for method in operations}))


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    last_outage_log = [0.0]

    async def validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "validation_error", "the request is invalid",
                              _validation_details(exc))

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return error_response(exc.status_code, CODES.get(exc.status_code, "http_error"),
                              message, headers=headers)

    async def redis_down(request: Request, exc: Exception) -> Response:
        now = time.monotonic()
        if now - last_outage_log[0] > OUTAGE_LOG_EVERY_S:
            last_outage_log[0] = now
            log.warning("api.redis_unavailable", path=request.url.path, error=str(exc))
        return unavailable()

    async def not_replicated(request: Request, exc: Exception) -> Response:
        log.warning("api.write_not_replicated", path=request.url.path, error=str(exc))
        return error_response(
            503, "not_replicated",
            "the write was not confirmed by enough replicas in time; retry after the seconds "
            "in Retry-After (with the same idempotency key: that is safe)",
            [{"possiblyCreated": True, "reason": str(exc)}],
            headers={"Retry-After": str(RETRY_AFTER_S)})

    async def out_of_memory(request: Request, exc: Exception) -> Response:
        # Redis at maxmemory with noeviction refuses writes (and wrote nothing of the refused
        # one): the server is fine and will accept again once workers drain the queues.
        now = time.monotonic()
        if now - last_outage_log[0] > OUTAGE_LOG_EVERY_S:
            last_outage_log[0] = now
            log.warning("api.redis_out_of_memory", path=request.url.path, error=str(exc))
        return error_response(503, "redis_out_of_memory",
                              "Redis is full (maxmemory) and refuses writes; retry later",
                              headers={"Retry-After": str(RETRY_AFTER_S)})

    def simple(status: int, code: str) -> Handler:
        async def handle(_: Request, exc: Exception) -> Response:
            details = exc.details if isinstance(exc, InvalidPayload | WorkflowInvalid) else None
            return error_response(status, code, str(exc), details)

        return handle

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("api.unhandled_error", path=request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "internal server error")

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http)
    for kind, (status, code) in JOB_ERRORS.items():
        app.add_exception_handler(kind, simple(status, code))
    app.add_exception_handler(orjson.JSONEncodeError, simple(422, "invalid_payload"))
    app.add_exception_handler(InvalidCursor, simple(422, "invalid_cursor"))
    app.add_exception_handler(WorkflowInvalid, simple(422, "invalid_workflow"))
    app.add_exception_handler(WorkflowBusy, simple(409, "workflow_busy"))
    app.add_exception_handler(NotFound, simple(404, "not_found"))
    app.add_exception_handler(JobExpired, simple(410, "job_expired"))
    app.add_exception_handler(NotReplicated, not_replicated)  # before its base, ConnectionError
    for exc_type in REDIS_DOWN:
        app.add_exception_handler(exc_type, redis_down)
    app.add_exception_handler(OutOfMemoryError, out_of_memory)
    app.add_exception_handler(Exception, unexpected)
