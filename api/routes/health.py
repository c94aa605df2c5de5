"""Liveness and readiness (open even when API tokens are configured) and Prometheus metrics
(behind the token like the rest of the API when tokens are configured)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from jobq.api.deps import ClientDep, MetricsDep
from jobq.api.errors import documented, unavailable
from jobq.api.metrics import CONTENT_TYPE
from jobq.api.schemas import Health
from jobq.connection import REDIS_DOWN

router = APIRouter(tags=["health"])

PING_TIMEOUT_S = 1.0  # a readiness probe must answer well within its own timeout


@router.get("/healthz", operation_id="healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process serves HTTP (Redis is not consulted)."""
    return Health(status="ok")


@router.get("/readyz", operation_id="readyz", response_model=Health, responses=documented(503))
async def readyz(client: ClientDep) -> Health | Response:
    """Readiness: 200 when Redis answers PING, 503 while it does not."""
    try:
        await asyncio.wait_for(client.redis.ping(), PING_TIMEOUT_S)
    except (TimeoutError, *REDIS_DOWN):
        return unavailable()
    return Health(status="ready")


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format."},
               **documented(401)},
)
async def metrics(client: ClientDep, api_metrics: MetricsDep) -> Response:
    """Prometheus metrics of this API process, with queue depths at most a second old."""
    return Response(await api_metrics.render(client), media_type=CONTENT_TYPE)
