"""Bearer-token auth for every route but health and metrics, as plain ASGI middleware so it
runs before routing (unknown paths answer 401 too, telling nothing about what exists)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from jobq.api.errors import error_bytes

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class BearerAuth:
    """Answer 401 unless ``Authorization: Bearer <token>`` names one of ``tokens``."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    def _allowed(self, scope: Scope) -> bool:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            return False
        scheme, _, given = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        given = given.strip()
        # Compare against every token, so timing tells nothing about which one nearly matched.
        found = False
        for token in self.tokens:
            found |= hmac.compare_digest(given, token)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = error_bytes("unauthorized", "a valid bearer token is required")
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="jobq"'),
            ],
        })
        await send({"type": "http.response.body", "body": body})

