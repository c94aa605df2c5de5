"""``/jobs``: create a job (the HTTP face of ``Client.enqueue``) and read it back."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from jobq.api.bodies import json_body, read_json
from jobq.api.deps import ClientDep, SettingsDep, WatchDep
from jobq.api.errors import documented
from jobq.api.metrics import ApiMetrics
from jobq.api.schemas import JobAccepted, JobCreate
from jobq.api.task_bodies import UNION_NAME
from jobq.client import Client
from jobq.jobs import JobPublic, JobStatus, status_of
from jobq.keys import STATUS_WAIT_MAX_S
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
    """Create a job once per idempotency key and queue: 202 when new, 200 for a repeat.

    The jobId names the job's queue (``<32 hex>-<queue>``). A 503 with code
    ``not_replicated`` means the job was possibly created: retry with the same key.
    """
    # The hot path: the body is parsed and validated in one pydantic-core call, and the
    # Client and metrics come from the app state. FastAPI's generic body handling and
    # dependency resolution would cost more than everything else this handler does.
    body = await read_json(request, JobCreate)
    client: Client = request.app.state.client
    metrics: ApiMetrics = request.app.state.metrics
    options = body.options
    with client.remote_parent(request.headers):  # the request's trace, when tracing is on
        result = await client.enqueue(
            body.type, body.idempotencyKey, body.payload,
            attempts=options.attempts if options else None,
            backoff=options.backoff if options else None,
            delay_s=options.delaySeconds if options else 0.0,
            priority=options.priority if options else None,
        )
    metrics.job_enqueued(result.queue, body.type, result.duplicate)
    log.debug("job.enqueued", jobId=result.job_id, queue=result.queue, type=body.type,
              duplicate=result.duplicate)
    content = orjson.dumps({"status": "accepted", "jobId": result.job_id,
                            "duplicate": result.duplicate})
    return Response(content, 200 if result.duplicate else 202, media_type="application/json")


@router.get("/jobs/{job_id}/status", operation_id="get_job_status", response_model=JobStatus,
            responses=documented(401, 404, 410, 422, 503))
async def get_job_status(
    job_id: str, client: ClientDep, watch: WatchDep, settings: SettingsDep,
    wait: Annotated[float, Query(
        ge=0, le=86400,
        description="Long poll: answer as soon as the job is terminal (completed, failed, "
                    "cancelled) or after this many seconds, whichever comes first. Cut to the "
                    f"server's maximum (JOBQ_STATUS_WAIT_MAX_S, default "
                    f"{STATUS_WAIT_MAX_S:g} s); 0 answers at once.")] = 0,
) -> JobStatus:
    """The status view of a job: state, attempts, timestamps and progress; with ``wait``, a
    long poll that answers the moment the job finishes."""
    if wait <= 0:
        return status_of(await client.get_job(job_id))
    return status_of(await watch.wait(job_id, min(wait, settings.status_wait_max_s)))


@router.get("/jobs/{job_id}", operation_id="get_job", response_model=JobPublic,
            responses=documented(401, 404, 410, 503))
async def get_job(job_id: str, client: ClientDep) -> JobPublic:
    """The full record of a job: payload, result, history of attempts and replay lineage."""
    return await client.get_job(job_id)
