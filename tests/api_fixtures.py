"""Fixtures of the API tests. Most run the real app in-process (httpx's ASGI transport, with
the app's lifespan, against the test's real Redis): the contract is the same and no process
start is paid. ``start_api`` starts a real ``jobq api`` process for what needs real HTTP: a
body streamed over a socket (413), starting with Redis down, an outside fuzzer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fixtures import Proc, process_env

from jobq.api import create_app
from jobq.embedded import free_port
from jobq.settings import Settings
from jobq.tasks import Registry

START_TIMEOUT_S = 30.0
# Never resolved: the transport calls the app directly; a name the default
# JOBQ_API_ALLOWED_HOSTS accepts.
IN_PROCESS_URL = "http://localhost"


@dataclass
class ApiServer:
    url: str
    proc: Proc


def wait_healthy(url: str, proc: Proc, timeout: float = START_TIMEOUT_S) -> None:
    """Poll /healthz until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"jobq api exited with {proc.popen.returncode}:\n{proc.output()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"jobq api not healthy after {timeout}s:\n{proc.output()}")


@pytest.fixture
def start_api(spawn: Callable[..., Proc], settings: Settings) -> Callable[..., ApiServer]:
    """Start ``jobq api`` on a free port (extra env vars as keyword arguments)."""

    def start(settings_: Settings | None = None, **env: str) -> ApiServer:
        port = free_port()
        proc = spawn(["api", "--port", str(port)], process_env(settings_ or settings, **env),
                     name="api")
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        return ApiServer(url, proc)

    return start


ApiFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api_app(settings: Settings, registry: Registry) -> ApiFactory:
    """``async with api_app(**settings_changes) as http``: the app built by ``create_app``,
    its lifespan running, and an HTTP client that calls it in-process."""

    @asynccontextmanager
    async def serve(
        registry_: Registry | None = None, **changes: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        # Validated like any settings (``api_tokens="a, b"`` is split as from the env var).
        app = create_app(Settings(**{**settings.model_dump(), **changes}), registry_ or registry)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=IN_PROCESS_URL, timeout=10.0
        ) as http:
            yield http

    return serve


@pytest.fixture
async def api(api_app: ApiFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API of this test, in-process."""
    async with api_app() as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response has ``status`` and the one error shape (with ``code``, when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    if code is not None:
        assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


def welcome(key: str, name: str = "Ada") -> dict[str, Any]:
    return {"type": "welcome-email", "idempotencyKey": key,
            "payload": {"email": "ada@example.com", "name": name}}
