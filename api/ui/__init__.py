"""The dashboard under ``/ui``: server-rendered pages (Jinja2, autoescaped) and a little
JavaScript, no build step. See ``pages`` (open shells) and ``fragments`` (authorised data)."""

from __future__ import annotations

from fastapi import APIRouter

from jobq.api.ui import fragments, pages, workflow_fragments

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(fragments.router)
router.include_router(workflow_fragments.router)

__all__ = ["router"]
