"""Refuse requests whose ``Host`` names no host this API serves (``JOBQ_API_ALLOWED_HOSTS``).

Against DNS rebinding: a page of ``evil.example`` whose name is made to resolve to the API's
address is same-origin with it for the browser (``Origin`` and ``Host`` both say
``evil.example``), so the CSRF check (``jobq.api.origin``) lets its POSTs through, and without
tokens nothing else stops them. The ``Host`` header still carries the attacker's name, which no
allow-list holds. An IP address as ``Host`` is always accepted: rebinding needs a name, and
kubelet probes and Prometheus send the pod's IP."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from jobq.api.errors import error_bytes

ANY_HOST = "*"


def host_name(header: str) -> str:
    """The host of a ``Host`` header: no port, lower case, no trailing dot; an IPv6 literal
    without its brackets (``[::1]:8000`` -> ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return value.partition(":")[0].rstrip(".")


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    """Answer 400 ``host_not_allowed`` unless ``Host`` is an IP address, one of ``hosts``, or
    a subdomain of a ``*.<domain>`` entry; ``*`` allows every host."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        names = {h.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
                 for h in hosts if h.strip()}
        self.any = ANY_HOST in names
        self.exact = {n for n in names if not n.startswith("*.")}
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))  # ".example.com"

    def allowed(self, scope: Scope) -> bool:
        header = next((v for k, v in scope["headers"] if k == b"host"), None)
        if header is None:
            return False
        name = host_name(header.decode("latin-1"))
        return name in self.exact or is_ip(name) or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.any or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        body = error_bytes("host_not_allowed",
                           "the Host header names no host this API serves "
                           "(JOBQ_API_ALLOWED_HOSTS)")
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
