"""FastAPI (and Starlette): one jobq client per application, opened and closed with it, and a
dependency that gives it to route handlers.

    app = FastAPI(lifespan=jobq_lifespan)

    @app.post("/invoices/{invoice_id}")
    async def bill(invoice_id: str, client: JobqClient) -> dict[str, str]: ...

With a lifespan of the application's own, ``async with jobq_client(app):`` inside it does the
same. Starlette apps call ``get_client(request)`` themselves. On the worker side, shared
resources come from ``jobq.hooks.worker_lifespan`` (``ctx.state``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from jobq.client import Client
from jobq.settings import Settings
from jobq.tasks import Registry, Task

STATE_ATTR = "jobq_client"  # where the client is kept on ``app.state``


@asynccontextmanager
async def jobq_client(
    app: Starlette, settings: Settings | None = None, *,
    tasks: Registry | Iterable[Task[Any, Any]] | None = None,
) -> AsyncIterator[Client]:
    """Open the application's client (``Client.open``: the environment unless ``settings``)
    and keep it on ``app.state`` for ``get_client`` until the block ends."""
    async with Client.open(settings, tasks=tasks) as client:
        setattr(app.state, STATE_ATTR, client)
        try:
            yield client
        finally:
            delattr(app.state, STATE_ATTR)


@asynccontextmanager
async def jobq_lifespan(app: Starlette) -> AsyncIterator[None]:
    """``FastAPI(lifespan=jobq_lifespan)``: a client from the environment for the app's life."""
    async with jobq_client(app):
        yield


def get_client(connection: HTTPConnection) -> Client:
    """The application's client (a request's or a websocket's app)."""
    client: Client | None = getattr(connection.app.state, STATE_ATTR, None)
    if client is None:
        raise RuntimeError("no jobq client on this app: give FastAPI(lifespan=jobq_lifespan), or "
                           "enter jobq_client(app) in the app's own lifespan")
    return client


JobqClient = Annotated[Client, Depends(get_client)]
"""A route parameter ``client: JobqClient`` is the application's shared client."""
