"""jobq.contrib.fastapi: routes share the app's one client; without the lifespan, a clear error."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from jobq.client import Client
from jobq.contrib.fastapi import JobqClient, jobq_client
from jobq.settings import Settings

pytestmark = pytest.mark.any_server


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/client")
    async def which(client: JobqClient) -> dict[str, int]:
        return {"id": id(client)}

    return app


async def test_routes_share_the_client_of_the_app_lifespan(settings: Settings) -> None:
    app = make_app()
    async with jobq_client(app, settings) as opened, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        seen = {(await http.get("/client")).json()["id"] for _ in range(3)}
        assert seen == {id(opened)} and isinstance(opened, Client)
    assert not hasattr(app.state, "jobq_client")  # closed and removed with the lifespan


async def test_without_the_lifespan_the_error_says_what_to_add() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()),
                                 base_url="http://app") as http:
        with pytest.raises(RuntimeError, match="lifespan=jobq_lifespan"):
            await http.get("/client")
