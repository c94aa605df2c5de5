"""Rendering the dashboard: one Jinja2 environment with autoescape on for every template, so
every payload, error and name a page shows is text, never markup."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
import orjson
from fastapi import Request, Response

TEMPLATES = Path(__file__).parent / "templates"
SPARK_W, SPARK_H = 120, 24  # sparkline size (px)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)

# The shells hold no data and run only our own script: nothing inline, nothing framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def sparkline(values: list[int]) -> str:
    """SVG polyline points for ``values`` (oldest first), scaled to the sparkline box."""
    return _points(tuple(values))


@functools.lru_cache(maxsize=1024)
def _points(values: tuple[int, ...]) -> str:
    # Cached: the overview draws two lines per queue on every refresh, and most hours repeat
    # (idle queues are all zeros), so formatting them again is most of the page's render time.
    if not values:
        return ""
    top = max(max(values), 1)
    step = SPARK_W / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{SPARK_H - 1 - v / top * (SPARK_H - 2):.1f}"
                    for i, v in enumerate(values))


_env.filters["pretty_json"] = pretty_json
_env.globals["sparkline"] = sparkline
_env.globals["SPARK_W"], _env.globals["SPARK_H"] = SPARK_W, SPARK_H


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A template as an HTML response; ``root`` is the path prefix the app is served under
    (behind an Ingress at a prefix), so every link and asset works there too."""
    html = _env.get_template(template).render(root=request.scope.get("root_path", ""), **context)
    return Response(html, status, media_type="text/html; charset=utf-8",
                    headers=SECURITY_HEADERS)
