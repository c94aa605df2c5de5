"""``POST /jobs/batch``: many jobs in one request, each answered on its own (the HTTP face of
``Client.enqueue_many``). Only a malformed envelope or too many jobs refuses the request as a
whole; an invalid job gets its own error and the others are created."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from jobq.api.bodies import json_body, read_json
from jobq.api.errors import documented, job_error
from jobq.api.metrics import ApiMetrics
from jobq.api.schemas import JobBatchAccepted, JobBatchCreate, JobCreate
from jobq.client import Client, EnqueueResult, JobRequest
from jobq.keys import BATCH_MAX_JOBS

router = APIRouter(tags=["jobs"])


def _invalid(index: int, exc: ValidationError) -> dict[str, Any]:
    details = [{"loc": ["body", "jobs", index, *err["loc"]], "msg": err["msg"],
                "type": err["type"]} for err in exc.errors(include_url=False)]
    return {"status": "error", "httpStatus": 422, "error": {
        "code": "validation_error", "message": "the job is invalid", "details": details}}


def _request(job: JobCreate) -> JobRequest:
    o = job.options
    return JobRequest(job.type, job.idempotencyKey, job.payload,
                      attempts=o.attempts if o else None, backoff=o.backoff if o else None,
                      delay_s=o.delaySeconds if o else 0.0,
                      priority=o.priority if o else None)


@router.post(
    "/jobs/batch",
    operation_id="create_jobs",
    response_model=JobBatchAccepted,
    responses={200: {"description": f"Each job (at most {BATCH_MAX_JOBS}) answered in order: "
                                    "created, a repeat of its key, or its own error."},
               **documented(401, 413, 415, 422, 503)},
    openapi_extra=json_body(JobBatchCreate.__name__),
)
async def create_jobs(request: Request) -> Response:
    """Create many jobs, each once per its own idempotency key; answers every job in order."""
    body = await read_json(request, JobBatchCreate)
    client: Client = request.app.state.client
    metrics: ApiMetrics = request.app.state.metrics
    items: list[dict[str, Any] | None] = [None] * len(body.jobs)
    valid: list[tuple[int, JobCreate]] = []
    for i, raw in enumerate(body.jobs):
        try:
            valid.append((i, JobCreate.model_validate(raw, strict=True)))
        except ValidationError as exc:
            items[i] = _invalid(i, exc)
    with client.remote_parent(request.headers):  # the request's trace, when tracing is on
        results = await client.enqueue_many([_request(job) for _, job in valid])
    created = duplicates = 0
    for (i, job), result in zip(valid, results, strict=True):
        if isinstance(result, EnqueueResult):
            metrics.job_enqueued(result.queue, job.type, result.duplicate)
            duplicates += result.duplicate
            created += not result.duplicate
            items[i] = {"status": "accepted", "httpStatus": 200 if result.duplicate else 202,
                        "jobId": result.job_id, "duplicate": result.duplicate}
            continue
        refused = job_error(result)
        if refused is None:
            raise result
        items[i] = {"status": "error", "httpStatus": refused[0], "error": refused[1]}
    answer = {"items": items, "created": created, "duplicates": duplicates,
              "errors": len(items) - created - duplicates}
    return Response(orjson.dumps(answer), 200, media_type="application/json")
