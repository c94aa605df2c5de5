"""``GET /jobs/{id}/events``: a job's state changes and progress as Server-Sent Events, from
the queue's event stream (``jobq.watch``), not by polling: the job is read again only on
each heartbeat, so a missed stream entry delays the client by one heartbeat at most. Every event
carries the job's status view as its data; the stream ends after the terminal one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from jobq.api.deps import ClientDep, SettingsDep, WatchDep
from jobq.api.errors import documented
from jobq.client import Client
from jobq.connection import REDIS_DOWN
from jobq.errors import NotFound
from jobq.jobs import JobStatus, dumps, status_of
from jobq.settings import Settings
from jobq.watch import JobWatch

router = APIRouter(tags=["jobs"])
ERROR_REF = "#/components/schemas/ErrorBody"
# One event of the stream (as OpenAPI 3.2 describes SSE): its name, and the status view as JSON.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["status", "progress"]},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/JobStatus"},
                 "description": "The job's status view (`JobStatus`), as JSON."},
    },
}


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers, documented as JSON: by ``model``, FastAPI would file them under the
    route's own media type (``text/event-stream``)."""
    out = documented(*statuses)
    for answer in out.values():
        del answer["model"]
        answer["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    return out


def frame(event: str, view: JobStatus) -> bytes:
    return f"event: {event}\ndata: {dumps(view.model_dump(mode='json'))}\n\n".encode()


async def job_frames(client: Client, watch: JobWatch, settings: Settings, job_id: str,
                     queue: str) -> AsyncIterator[bytes]:
    """``status`` now and on every state change, ``progress`` when only progress changed, a
    heartbeat comment when idle (the job is re-read then, in case its event was missed); ends
    after the terminal state or ``events_max_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + settings.events_max_s
    try:
        async with watch.events(queue, job_id, end) as inbox:
            view = status_of(await watch.read(queue, job_id))
            yield frame("status", view)
            while not view.terminal and loop.time() < end:
                try:
                    async with asyncio.timeout(min(settings.events_heartbeat_s,
                                                   end - loop.time())):
                        happened = {await inbox.get()}
                except TimeoutError:
                    if loop.time() >= end:
                        continue
                    # Re-read on every heartbeat: an event can be missed (the stream expired
                    # or was trimmed before the reader's XREAD, the reader restarted), and
                    # without this the client would wait, stale, until events_max_s.
                    before, view = view, status_of(await watch.read(queue, job_id))
                    if view == before:
                        yield b": heartbeat\n\n"
                    else:
                        yield frame("status" if view.state != before.state else "progress",
                                    view)
                    continue
                while not inbox.empty():
                    happened.add(inbox.get_nowait())
                before, view = view, status_of(await watch.read(queue, job_id))
                # By the state read, not by the events heard: a read may see a change whose
                # event is still on its way.
                changed = view.state != before.state or happened != {"progress"}
                yield frame("status" if changed else "progress", view)
    except (NotFound, *REDIS_DOWN):
        return  # trimmed, or Redis went away: the client reconnects and hears why


@router.get(
    "/jobs/{job_id}/events", operation_id="get_job_events", response_class=EventStream,
    responses={200: {"description": (
        "Server-Sent Events: `status` (the status view) at once and on every state change, "
        "`progress` when only the progress changed, a comment as heartbeat when idle; the "
        "stream ends after the terminal state (or after JOBQ_EVENTS_MAX_S: reconnect)."),
        "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}},
        **_json_errors(401, 404, 410, 503)},
)
async def get_job_events(job_id: str, client: ClientDep, watch: WatchDep,
                         settings: SettingsDep) -> EventStream:
    """Follow a job live: its state changes and progress as Server-Sent Events."""
    job = await client.get_job(job_id)  # 404 / 410 / 503 before the stream starts
    return EventStream(job_frames(client, watch, settings, job_id, job.queue),
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
