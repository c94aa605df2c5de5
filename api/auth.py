"""Bearer-token auth for every route but health, as plain ASGI middleware so it runs before
routing (unknown paths answer 401 too, telling nothing about what exists). /metrics needs the
token too: it names every queue and task type, and each scrape reads Redis (the chart's
ServiceMonitor sends the token)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from jobq.api.errors import error_bytes

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
UI_DATA_PREFIX = "/ui/f/"  # the dashboard's data: behind the token like the API


def is_open(path: str) -> bool:
    """Health, and the dashboard's shells and assets, which hold no data (its data
    fragments under UI_DATA_PREFIX need the token)."""
    if path in OPEN_PATHS:
        return True
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith(UI_DATA_PREFIX)


def token_id(token: bytes) -> str:
    """What logs name a caller by: a short digest of its token, never the token."""
    return "token:" + hashlib.sha256(token).hexdigest()[:8]


def caller(scope: Scope) -> str:
    """Who made this request, for the logs of state changes ("anonymous" without auth)."""
    state = scope.get("state") or {}
    return str(state.get("token_id", "anonymous"))


class BearerAuth:
    """Answer 401 unless ``Authorization: Bearer <token>`` names one of ``tokens``."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    def _allowed(self, scope: Scope) -> bool:
        """True for a known token, which is then named in ``scope["state"]["token_id"]``."""
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
        if found:
            scope.setdefault("state", {})["token_id"] = token_id(given)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]) or self._allowed(scope):
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

