"""Typed calls of the workflow scripts (``jobq/lua/wf_*.lua``), on ``jobq.scripts.Scripts``'s
transport. Each call touches one slot: the workflow's, or one queue's."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from jobq.keys import QueueKeys
from jobq.scripts import CONFLICT, DUPLICATE, Scripts, new_nonce
from jobq.workflows.keys import (
    WorkflowKeys,
    node_idempotency_key,
    node_job_id,
    outbox_keys,
)

FOLLOW_UP_MOST = 200  # ready / kill entries one wf_apply answer carries (bounded script time)
OUTBOX_LEASE_MS = 5000  # a taken outbox entry is another relay's after this (crash recovery)
SETTLE_MOST = 250  # dependency edges one wf_apply settles (a large fan-out: several calls)
RELEASE_BATCH = 50  # node jobs one wf_release creates (bounded script time)
CREATING = 5  # wf_create_chunk: stored, more chunks to come (not sealed yet)

RUN, CANCEL = "run", "cancel"
RELEASED_ALREADY, TOMBSTONED, EXISTS = DUPLICATE, 3, 4
FINAL_STATES = ("succeeded", "failed", "cancelled")
JOB_ARGS_KEY = 3  # the idempotency key's place in a node's job fields (jobq.scripts.NewJob)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as stored in its workflow (the ``nodes`` hash), all a relay needs to create or
    cancel its job."""

    idx: int
    key: str
    queue: str
    job_id: str
    fingerprint: str
    delay_ms: int
    job_args: list[Any]
    deps: list[tuple[int, str]]
    epoch: int = 0

    @staticmethod
    def parse(idx: int, raw: str, workflow_id: str = "") -> NodeSpec:
        """A node as stored; from epoch 1 on (a reopen, "e" in the answer) its job's id and
        idempotency key are those of that epoch."""
        s = json.loads(raw)
        epoch = int(s.get("e", 0))
        job_id, job_args = s["id"], s["j"]
        if epoch and workflow_id:
            job_id = node_job_id(workflow_id, s["q"], s["k"], epoch)
            job_args = [*job_args]
            job_args[JOB_ARGS_KEY] = node_idempotency_key(workflow_id, s["k"], epoch)
        return NodeSpec(idx, s["k"], s["q"], job_id, s["fp"], int(s["dl"]), job_args,
                        [(int(d[0]), str(d[1])) for d in s.get("d", [])], epoch)

    def wf_field(self, workflow_id: str) -> str:
        return f"{workflow_id}|{self.idx}|{self.epoch}"


@dataclass(frozen=True, slots=True)
class Step:
    """wf_apply's answer: whether this call moved a node, the workflow's state ("" = gone),
    and what is left to do: nodes to release (create jobs) and to cancel."""

    applied: bool
    state: str
    ready: list[NodeSpec]
    kill: list[NodeSpec]
    settle_backlog: int = 0  # settle entries left (a large fan-out): call "pending" again


REOPENED, NOTHING, REOPENED_ALREADY, REFUSED, NO_NODE, NOT_FAILED = 1, 0, 2, -1, -3, -4


@dataclass(frozen=True, slots=True)
class Reopened:
    """wf_reopen's answer: its code (REOPENED...), the follow-ups, and for a replay the
    node's epoch now."""

    code: int
    step: Step
    epoch: int


def _step(raw: list[Any], workflow_id: str = "") -> Step:
    applied, state = int(raw[0]) == 1, str(raw[1])
    lists: list[list[NodeSpec]] = []
    at = 2
    for _ in range(2):
        if at >= len(raw):
            lists.append([])
            continue
        count = int(raw[at])
        at += 1
        specs = [NodeSpec.parse(int(raw[at + 2 * i]), raw[at + 2 * i + 1], workflow_id)
                 for i in range(count)]
        lists.append(specs)
        at += 2 * count
    backlog = int(raw[at]) if at < len(raw) else 0
    return Step(applied, state, lists[0], lists[1], backlog)


class WorkflowScripts:
    def __init__(self, scripts: Scripts, prefix: str) -> None:
        self.scripts = scripts
        self.prefix = prefix
        # Called when a call of this object ended a workflow (jobq/workflows/metrics.py).
        self.ended: Callable[[WorkflowKeys, str], Awaitable[None]] | None = None

    def keys(self, workflow_id: str) -> WorkflowKeys:
        return WorkflowKeys(self.prefix, workflow_id)

    async def create(self, wk: WorkflowKeys, fingerprint: str, key: str, fail_fast: bool,
                     retention_s: int, nodes: list[tuple[str, str, str, int]]) -> int:
        """CREATED, DUPLICATE or CONFLICT."""
        args: list[Any] = [fingerprint, key, "1" if fail_fast else "0", retention_s]
        for node in nodes:
            args += node
        return int(await self.scripts.call("wf_create", [wk.meta, wk.prefix_key], args,
                                           durable=True))

    async def create_chunk(self, wk: WorkflowKeys, fingerprint: str, key: str, fail_fast: bool,
                           retention_s: int, total: int, creating_ttl_s: int,
                           nodes: list[tuple[int, str, str, str, int]]) -> int:
        """One chunk of a large workflow: CREATED (this chunk sealed it), CREATING (more to
        come), DUPLICATE (sealed before) or CONFLICT."""
        args: list[Any] = [fingerprint, key, "1" if fail_fast else "0", retention_s, total,
                           creating_ttl_s]
        for node in nodes:
            args += node
        return int(await self.scripts.call("wf_create_chunk", [wk.meta, wk.prefix_key], args,
                                           durable=True))

    async def apply(self, wk: WorkflowKeys, mode: str, idx: int | str = "", epoch: int | str = "",
                    outcome: str = "", data: str = "") -> Step:
        raw = await self.scripts.call(
            "wf_apply", [wk.meta, wk.prefix_key],
            [mode, idx, epoch, outcome, data, FOLLOW_UP_MOST, SETTLE_MOST], durable=True)
        step = _step(raw, wk.id)
        # A call that moved something and answers a final state is the one that ended it.
        if self.ended is not None and step.applied and step.state in FINAL_STATES:
            await self.ended(wk, step.state)
        return step

    async def ack(self, wk: WorkflowKeys, ready: list[int], kill: list[int]) -> None:
        await self.scripts.call("wf_ack", [wk.key("ready"), wk.key("kill")],
                                [len(ready), *ready, *kill])

    async def release(self, q: QueueKeys, retention_s: int, workflow_id: str,
                      items: list[tuple[str, NodeSpec]]) -> list[int]:
        """Create (``RUN``) or stand in for (``CANCEL``) node jobs of one queue; per item
        CREATED / RELEASED_ALREADY / CONFLICT, or TOMBSTONED / EXISTS."""
        keys = [q.wait, q.delayed, q.cancelled, q.job_prefix]
        args: list[Any] = [retention_s, new_nonce()]
        for mode, spec in items:
            keys += (q.idempotency(spec.job_id), q.job(spec.job_id))
            args += (mode, spec.job_id, spec.fingerprint, spec.delay_ms,
                     spec.wf_field(workflow_id), *spec.job_args)
        raw = await self.scripts.call("wf_release", keys, args, durable=True)
        return [int(code) for code in raw]

    async def take(self, q: QueueKeys, most: int, acked: list[str]) -> list[tuple[str, str]]:
        """Acknowledge ``acked`` outbox entries, then take (lease) up to ``most`` due ones."""
        outbox, due = outbox_keys(q.base)
        raw = await self.scripts.call("wf_take", [outbox, due], [most, OUTBOX_LEASE_MS, *acked])
        return [(str(raw[i]), str(raw[i + 1])) for i in range(0, len(raw), 2)]

    async def reopen(self, wk: WorkflowKeys, mode: str, idx: int | str = "",
                     epoch: int | str = "") -> Reopened:
        """wf_reopen: a DLQ replay of node ``idx`` (mode "replay", the entry's ``epoch``) or a
        retry (mode "failed_only" | "failed_and_downstream" | "all")."""
        raw = await self.scripts.call("wf_reopen", [wk.meta, wk.prefix_key],
                                      [mode, idx, epoch, FOLLOW_UP_MOST], durable=True)
        step = _step(raw, wk.id)
        step = replace(step, settle_backlog=0)  # the value after the lists is the epoch here
        end = 2 + sum(1 + 2 * n for n in (len(step.ready), len(step.kill))) if step.state else 2
        epoch_now = int(raw[end]) if len(raw) > end else 0
        return Reopened(int(raw[0]), step, epoch_now)

    async def inputs(self, wk: WorkflowKeys, idx: int) -> list[tuple[str, str, str]]:
        raw = await self.scripts.call("wf_inputs", [wk.meta, wk.prefix_key], [idx])
        return [(str(raw[i]), str(raw[i + 1]), str(raw[i + 2])) for i in range(0, len(raw), 3)]

    async def apply_many(self, wk: WorkflowKeys,
                         outcomes: list[tuple[str, str, str, str]]) -> tuple[int, Step]:
        """wf_apply's ``apply`` for several (index, epoch, outcome, data) of one workflow in
        one call: how many moved a node, and the step as ``apply`` answers it."""
        args: list[Any] = [FOLLOW_UP_MOST, SETTLE_MOST]
        for outcome in outcomes:
            args += outcome
        raw = await self.scripts.call("wf_apply_many", [wk.meta, wk.prefix_key], args,
                                      durable=True)
        applied = int(raw[0])
        raw[0] = 1 if applied else 0
        step = _step(raw, wk.id)
        if self.ended is not None and step.applied and step.state in FINAL_STATES:
            await self.ended(wk, step.state)
        return applied, step


__all__ = ["CANCEL", "CONFLICT", "CREATING", "EXISTS", "RUN", "NodeSpec", "Step", "WorkflowScripts"]
