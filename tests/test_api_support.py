"""Fixtures and helpers of the API tests: a real ``jobq api`` process per test, and polling
with a deadline. (No tests here; the test_api_*.py modules import from it.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from fixtures import Proc, process_env

from jobq.embedded import free_port
from jobq.settings import Settings

T = TypeVar("T")
START_TIMEOUT_S = 30.0


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


@pytest.fixture
async def api(start_api: Callable[..., ApiServer]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a fresh API process of this test."""
    server = start_api()
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        yield http


async def wait_until(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, what: str = "condition"
) -> T:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


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
