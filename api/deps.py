"""``Annotated`` dependencies the routes take: the core Client, the settings, the metrics.
All are ``async def`` so FastAPI calls them inline instead of in its thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jobq.api.metrics import ApiMetrics
from jobq.client import Client
from jobq.settings import Settings
from jobq.watch import JobWatch


async def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_watch(request: Request) -> JobWatch:
    watch: JobWatch = request.app.state.watch
    return watch


ClientDep = Annotated[Client, Depends(get_client)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
WatchDep = Annotated[JobWatch, Depends(get_watch)]
