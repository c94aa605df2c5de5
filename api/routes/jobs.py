"""``/jobs``: create a job (the HTTP face of ``Client.enqueue``) and read it back."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from jobq.api.bodies import json_body, read_json
from jobq.api.deps import ClientDep
from jobq.api.errors import documented
from jobq.api.metrics import ApiMetrics
from jobq.api.schemas import JobAccepted, JobCreate
from jobq.api.task_bodies import UNION_NAME
from jobq.client import Client
from jobq.jobs import JobPublic, JobStatus, status_of
from jobq.logs import get_logger

router = APIRouter(tags=["jobs"])
log = get_logger("jobq.api")

# OpenAPI links: where the jobId of an answer leads (clients and fuzzers follow them).
JOB_LINKS: dict[str, Any] = {
    "GetJobStatus": {"operationId": "get_job_status",
                     "parameters": {"job_id": "$response.body#/jobId"}},
    "GetJob": {"operationId": "get_job", "parameters": {"job_id": "$response.body#/jobId"}},
}


@router.post(
    "/jobs",
    operation_id="create_job",
    status_code=202,
    response_model=JobAccepted,
    responses={
        202: {"description": "Created: the job is stored in Redis and will run (R1).",
              "links": JOB_LINKS},
        200: {"model": JobAccepted, "links": JOB_LINKS,
              "description": "A repeat of an earlier request with this key: the same job."},
        **documented(401, 409, 413, 415, 422, 503),
    },
    openapi_extra=json_body(UNION_NAME),
)
async def create_job(request: Request) -> Response:
    """Create a job once per idempotency key: 202 when new, 200 for a repeat."""
    # The hot path: the body is parsed and validated in one pydantic-core call, and the
    # Client and metrics come from the app state. FastAPI's generic body handling and
    # dependency resolution would cost more than everything else this handler does.
    body = await read_json(request, JobCreate)
    client: Client = request.app.state.client
    metrics: ApiMetrics = request.app.state.metrics
    options = body.options
    result = await client.enqueue(
        body.type, body.idempotencyKey, body.payload,
        attempts=options.attempts if options else None,
        backoff=options.backoff if options else None,
        delay_s=options.delaySeconds if options else 0.0,
    )
    metrics.job_enqueued(result.queue, body.type, result.duplicate)
    log.debug("job.enqueued", jobId=result.job_id, queue=result.queue, type=body.type,
              duplicate=result.duplicate)
    content = orjson.dumps({"status": "accepted", "jobId": result.job_id,
                            "duplicate": result.duplicate})
    return Response(content, 200 if result.duplicate else 202, media_type="application/json")


@router.get("/jobs/{job_id}/status", operation_id="get_job_status", response_model=JobStatus,
            responses=documented(401, 404, 410, 503))
async def get_job_status(job_id: str, client: ClientDep) -> JobStatus:
    """The status view of a job: state, attempts and timestamps."""
    return status_of(await client.get_job(job_id))


@router.get("/jobs/{job_id}", operation_id="get_job", response_model=JobPublic,
            responses=documented(401, 404, 410, 503))
async def get_job(job_id: str, client: ClientDep) -> JobPublic:
    """The full record of a job: payload, result, history of attempts and replay lineage."""
    return await client.get_job(job_id)
