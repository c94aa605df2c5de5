"""Refuse state changes sent by another site's page (CSRF). A browser names the page that
sent a request in ``Origin`` (and ``Sec-Fetch-Site``); a POST, PUT, PATCH or DELETE from a page
of another origin is answered 403 before it reaches a route. Clients that are not browsers
(curl, SDKs) send neither header and are not affected. With auth on, the bearer header (which
no cross-site form can set) protects the same routes a second way. A DNS-rebinding page is
same-origin by these headers; ``jobq.api.hosts`` refuses it by its Host."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from jobq.api.errors import error_bytes

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> str | None:
    value = next((v for k, v in scope["headers"] if k == name), None)
    return None if value is None else value.decode("latin-1")


def cross_site(scope: Scope) -> bool:
    """True when a browser says the request comes from a page of another origin."""
    if _header(scope, b"sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    host = _header(scope, b"host")
    return origin == "null" or urlsplit(origin).netloc != host


class SameOrigin:
    """Answer 403 ``cross_site_request`` to a state change a cross-site page sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not cross_site(scope):
            await self.app(scope, receive, send)
            return
        body = error_bytes("cross_site_request",
                           "state changes are refused from pages of another origin")
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
