"""jobq's HTTP API (FastAPI): ``create_app(settings, registry)``; ``jobq api`` serves it."""

from __future__ import annotations

from jobq.api.main import create_app

__all__ = ["create_app"]
