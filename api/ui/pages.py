"""The dashboard's pages: shells that hold no data (so a browser may load them without a
token) and the two static assets. Each shell's script fetches its fragment with the bearer
token from sessionStorage and puts it in place, again every few seconds."""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from jobq.api.ui.render import SECURITY_HEADERS, render

router = APIRouter()

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def _shell(request: Request, title: str, fragment: str) -> Response:
    return render(request, "shell.html", title=title, fragment=fragment)


@router.get("/ui")
@router.get("/ui/")
async def overview(request: Request) -> Response:
    return _shell(request, "Overview", "/ui/f/overview")


@router.get("/ui/queues/{queue}")
async def queue_page(queue: str, request: Request) -> Response:
    return _shell(request, f"Queue {queue}", f"/ui/f/queues/{quote(queue, safe='')}")


@router.get("/ui/jobs/{job_id}")
async def job_page(job_id: str, request: Request) -> Response:
    return _shell(request, f"Job {job_id}", f"/ui/f/jobs/{quote(job_id, safe='')}")


@router.get("/ui/dlq")
async def dlq_page(request: Request) -> Response:
    return _shell(request, "Dead-letter queue", "/ui/f/dlq")


@router.get("/ui/workflows")
async def workflows_page(request: Request) -> Response:
    return _shell(request, "Workflows", "/ui/f/workflows")


@router.get("/ui/workflows/{workflow_id}")
async def workflow_page(workflow_id: str, request: Request) -> Response:
    return _shell(request, f"Workflow {workflow_id}",
                  f"/ui/f/workflows/{quote(workflow_id, safe='')}")


@router.get("/ui/static/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response("not found", 404, media_type="text/plain")
    body = resources.files("jobq.api.ui").joinpath("static", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=SECURITY_HEADERS)
