"""Replaying many DLQ entries at once (``POST /dlq/replay``): by a filter or a list of ids,
with a dry run that only counts.

Each entry is replayed through ``Client.replay`` with the key ``<requestKey>:<dlqId>``, so
repeating a bulk request with the same key makes no second job for any entry (R2, R7).
Entries are read newest first and at most BULK_REPLAY_MAX per request.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from pydantic import ConfigDict, Field

from jobq import keys
from jobq.client import Client
from jobq.errors import NotFound
from jobq.jobs import DlqEntry
from jobq.logs import get_logger
from jobq.models import DeferredModel

log = get_logger("jobq.bulk_replay")
SCAN_BATCH = 200  # DLQ entries read per round trip while filtering


class BulkReplayRequest(DeferredModel):
    """Which DLQ entries to replay: ``ids``, or every entry matching all the filters given."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(None, max_length=keys.BULK_REPLAY_MAX,
                                  description="These entries (the filters are then ignored).")
    queue: str | None = Field(None, max_length=200, description="Only entries of this queue.")
    type: str | None = Field(None, max_length=200, description="Only entries of this task type.")
    failedAfter: datetime | None = Field(None, description="Only entries failed at or after.")
    failedBefore: datetime | None = Field(None, description="Only entries failed before.")
    reasonContains: str | None = Field(None, max_length=1000,
                                       description="Only entries whose reason contains this.")
    dryRun: bool = Field(False, description="Only count the matching entries.")
    idempotencyKey: str | None = Field(
        None, min_length=1, max_length=900,
        description="Repeating the request with this key replays no entry twice.")


class BulkReplayItem(DeferredModel):
    dlqId: str
    jobId: str
    duplicate: bool


class BulkReplayResult(DeferredModel):
    """How many entries matched, and (unless a dry run) the job made from each."""

    matched: int
    dryRun: bool
    truncated: bool = Field(description=f"More than {keys.BULK_REPLAY_MAX} entries matched; "
                                        "only the newest were taken.")
    replayed: list[BulkReplayItem]


def _ms(moment: datetime | None) -> float | str | None:
    return None if moment is None else moment.timestamp() * 1000


def _matches(entry: DlqEntry, request: BulkReplayRequest) -> bool:
    if request.type is not None and entry.type != request.type:
        return False
    return request.reasonContains is None or request.reasonContains in (entry.failedReason or "")


async def _matching(client: Client, request: BulkReplayRequest) -> tuple[list[str], bool]:
    """Ids of the matching entries, newest first, and whether the cap cut the list."""
    if request.ids is not None:
        found = []
        for dlq_id in dict.fromkeys(request.ids):
            try:
                await client.get_dlq_entry(dlq_id)
            except NotFound:
                continue
            found.append(dlq_id)
        return found, False
    queues = [request.queue] if request.queue else await client.queues()
    top, bottom = _ms(request.failedBefore), _ms(request.failedAfter)
    chosen: list[str] = []
    for queue in queues:
        q = client.keys(queue)
        offset = 0
        while len(chosen) <= keys.BULK_REPLAY_MAX:
            # failedBefore is exclusive: "(" on the top score.
            ids = [str(i) for i in await client.redis.zrevrangebyscore(
                q.dlq, "+inf" if top is None else f"({top}", "-inf" if bottom is None else bottom,
                start=offset, num=SCAN_BATCH)]
            if not ids:
                break
            offset += len(ids)
            entries = await asyncio.gather(*(client.get_dlq_entry(i) for i in ids)) if (
                request.type or request.reasonContains) else None
            chosen += [i for n, i in enumerate(ids)
                       if entries is None or _matches(entries[n], request)]
    return chosen[: keys.BULK_REPLAY_MAX], len(chosen) > keys.BULK_REPLAY_MAX


async def bulk_replay(client: Client, request: BulkReplayRequest, *, who: str) -> BulkReplayResult:
    """Replay (or, on a dry run, count) every entry the request selects."""
    ids, truncated = await _matching(client, request)
    if request.dryRun:
        return BulkReplayResult(matched=len(ids), dryRun=True, truncated=truncated, replayed=[])
    request_key = request.idempotencyKey or f"bulk:{uuid.uuid4()}"
    replayed = []
    for dlq_id in ids:
        try:
            result = await client.replay(dlq_id, f"{request_key}:{dlq_id}")
        except NotFound:  # discarded or expired since it was matched
            continue
        replayed.append(BulkReplayItem(dlqId=dlq_id, jobId=result.job_id,
                                       duplicate=result.duplicate))
    log.info("dlq.bulk_replayed", matched=len(ids), replayed=len(replayed), by=who)
    return BulkReplayResult(matched=len(ids), dryRun=False, truncated=truncated,
                            replayed=replayed)
