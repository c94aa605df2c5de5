"""The release protocol's driver (R24): outbox entries applied to their workflow, the nodes
that became ready released in their queues, the cancelled ones stopped, then acknowledged.

Every step is one single-slot script and idempotent, so running any step twice, or two
relays running the same entry, changes nothing more; a step cut short by a crash is redone
from what is still recorded: the outbox entry (leased, taken again after OUTBOX_LEASE_MS), the
workflow's ready and kill lists, and the intent shards (creation and cancel). Order of one
entry: apply (workflow slot) -> release / cancel (each queue's slot) -> ack ready and kill
(workflow slot) -> ack the outbox entry (queue slot, at the relay's next take).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jobq.errors import JobFinished, NotFound
from jobq.keys import QueueKeys
from jobq.logs import get_logger
from jobq.scripts import CONFLICT, Scripts
from jobq.settings import Settings
from jobq.workflows.keys import INTENT_SHARDS, WorkflowKeys, intent_key, is_workflow_id
from jobq.workflows.scripts import (
    CANCEL,
    EXISTS,
    FOLLOW_UP_MOST,
    RELEASE_BATCH,
    RUN,
    TOMBSTONED,
    NodeSpec,
    Step,
    WorkflowScripts,
)

log = get_logger("jobq.workflows")

APPLY_BATCH = 50  # outcomes of one workflow one wf_apply_many call applies (bounded time)
INTENT_AGE_MS = 5000  # an intent older than this is the sweeper's (its writer may have died)
TAKEN_ALREADY = "job id taken by a job outside the workflow"
CANCELLED = "cancelled on request"


class Relay:
    """Drives workflows from one process (a worker's relay and sweeper, or a client)."""

    def __init__(self, scripts: Scripts, settings: Settings) -> None:
        self.scripts = scripts
        self.settings = settings
        self.wf = WorkflowScripts(scripts, settings.key_prefix)

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.settings.key_prefix, name)

    async def apply_entry(self, raw: str) -> None:
        """Apply one outbox entry and everything it released; raises on a Redis error (the
        entry stays leased, and is taken again after OUTBOX_LEASE_MS)."""
        entry = json.loads(raw)
        wf_id, idx, epoch = str(entry["w"]).split("|")
        if not is_workflow_id(wf_id):
            log.error("workflow.bad_outbox_entry", entry=raw[:200])
            return
        wk = self.wf.keys(wf_id)
        step = await self.wf.apply(wk, "apply", idx, epoch, str(entry["o"]), str(entry["d"]))
        if step.applied:
            log.debug("workflow.node_ended", workflow=wf_id, node=idx, outcome=entry["o"])
        await self.follow_up(wk, step)

    async def apply_entries(self, raws: list[str]) -> None:
        """Apply outbox entries, those of one workflow together (``wf_apply_many``, at most
        APPLY_BATCH a call), then everything they released; raises as ``apply_entry``."""
        per_workflow: dict[str, list[tuple[str, str, str, str]]] = {}
        for raw in raws:
            entry = json.loads(raw)
            wf_id, idx, epoch = str(entry["w"]).split("|")
            if not is_workflow_id(wf_id):
                log.error("workflow.bad_outbox_entry", entry=raw[:200])
                continue
            per_workflow.setdefault(wf_id, []).append((idx, epoch, str(entry["o"]),
                                                       str(entry["d"])))
        for wf_id, outcomes in per_workflow.items():
            wk = self.wf.keys(wf_id)
            for at in range(0, len(outcomes), APPLY_BATCH):
                applied, step = await self.wf.apply_many(wk, outcomes[at:at + APPLY_BATCH])
                if applied:
                    log.debug("workflow.nodes_ended", workflow=wf_id, nodes=applied)
                await self.follow_up(wk, step)

    async def follow_up(self, wk: WorkflowKeys, step: Step) -> Step:
        """Release the ready nodes and cancel the kill list's, until both are empty and no
        dependency is left to settle (a large fan-out settles in bounded steps)."""
        while step.ready or step.kill or step.settle_backlog:
            failed, stopped = await self._release(wk, step)
            await self.wf.ack(wk, [s.idx for s in step.ready], [s.idx for s in step.kill])
            for spec in failed:
                await self.wf.apply(wk, "apply", spec.idx, spec.epoch, "F", TAKEN_ALREADY)
            more = await self._settle_stopped(wk, stopped)  # may release an on_failure
            if not failed and not more and len(step.ready) < FOLLOW_UP_MOST \
                    and len(step.kill) < FOLLOW_UP_MOST and not step.settle_backlog:
                return step
            step = await self.wf.apply(wk, "pending")
        return step

    async def _release(
        self, wk: WorkflowKeys, step: Step,
    ) -> tuple[list[NodeSpec], list[NodeSpec]]:
        """Create the ready nodes' jobs and stop the kill list's, one call per queue, queues
        side by side. Answers the nodes whose job id another producer holds (to be failed)
        and those whose jobs this call ended cancelled (not the running ones: their workers
        end them)."""
        per_queue: dict[str, list[tuple[str, NodeSpec]]] = {}
        for spec in step.ready:
            per_queue.setdefault(spec.queue, []).append((RUN, spec))
        for spec in step.kill:
            per_queue.setdefault(spec.queue, []).append((CANCEL, spec))
        # A node job's idempotency record must not outlive its workflow: once the workflow's
        # keys expire, the same key creates it anew with the same job ids, whose creation an
        # older record would answer "duplicate" (released, never run: a stuck workflow).
        retention = min(self.settings.idempotency_retention_s,
                        self.settings.workflow_retention_s)
        failed: list[NodeSpec] = []
        stopped: list[NodeSpec] = []

        async def one(queue: str, items: list[tuple[str, NodeSpec]]) -> None:
            codes: list[int] = []
            for at in range(0, len(items), RELEASE_BATCH):  # bounded script time per call
                codes += await self.wf.release(self.queue(queue), retention, wk.id,
                                               items[at:at + RELEASE_BATCH])
            for (mode, spec), code in zip(items, codes, strict=True):
                if mode == RUN and code == CONFLICT:
                    log.error("workflow.node_job_taken", workflow=wk.id, node=spec.key,
                              jobId=spec.job_id)
                    failed.append(spec)
                elif mode == CANCEL and (code == TOMBSTONED or (
                        code == EXISTS and await self._cancel_job(queue, spec.job_id))):
                    stopped.append(spec)

        await asyncio.gather(*(one(q, items) for q, items in per_queue.items()))
        return failed, stopped

    async def _cancel_job(self, queue: str, job_id: str) -> bool:
        """Cancel a node's job: True when it ended cancelled now (it was waiting or delayed),
        False when its worker was asked to (running) or it had ended already (its outcome is,
        or was, in the outbox)."""
        s = self.settings
        try:
            return await self.scripts.cancel(self.queue(queue), job_id, s.completed_keep,
                                             s.completed_max_age_s * 1000)
        except (JobFinished, NotFound):
            return False

    async def _settle_stopped(self, wk: WorkflowKeys, stopped: list[NodeSpec]) -> bool:
        """Apply the cancels this relay caused itself and drop their outbox entries: the queue
        of a stopped node may have no worker (and so no relay) at all. The same outcome from
        the outbox later changes nothing (wf_apply's guard). True when that left work to do
        (an on_failure callback released after fail fast)."""
        per_queue: dict[str, list[str]] = {}
        more = False
        for spec in stopped:
            step = await self.wf.apply(wk, "apply", spec.idx, spec.epoch, "C", CANCELLED)
            more = more or bool(step.ready)
            per_queue.setdefault(spec.queue, []).append(spec.job_id)
        for queue, job_ids in per_queue.items():
            await self.wf.take(self.queue(queue), 0, job_ids)
        return more

    # Intents: announced before work that no outbox entry anchors (creation, cancel).

    async def announce(self, wk: WorkflowKeys) -> int:
        """Record that work on ``wk`` is in flight; the score to hand to ``done``."""
        score = int(time.time() * 1000)
        await self.scripts.redis.zadd(wk.intent, {wk.id: score})
        return score

    async def done(self, wk: WorkflowKeys, score: int) -> None:
        await self.scripts.call("wf_intent_done", [wk.intent], [wk.id, score])

    async def sweep_intents(self, most: int = 50) -> int:
        """Finish work whose writer went away: every intent older than INTENT_AGE_MS. Returns
        how many workflows it moved on."""
        redis: Any = self.scripts.redis
        before = int(time.time() * 1000) - INTENT_AGE_MS
        moved = 0
        for shard in range(INTENT_SHARDS):
            key = intent_key(self.settings.key_prefix, shard)
            for wf_id, score in await redis.zrangebyscore(key, "-inf", before, start=0, num=most,
                                                          withscores=True):
                if not is_workflow_id(wf_id):
                    await redis.zrem(key, wf_id)
                    continue
                wk = self.wf.keys(wf_id)
                await self.follow_up(wk, await self.wf.apply(wk, "pending"))
                await self.done(wk, int(score))
                moved += 1
        return moved
