"""Nodes added by a running node to its own workflow (R24): ``JobContext.add_workflow_nodes``.

The adding node is still released while it adds, so the workflow cannot end in between; the
new nodes are keyed, so a retried handler adds nothing twice (same key and spec: skipped;
same key, other spec: ``WorkflowNodeConflict``). A handler whose lease was lost is refused
(``LeaseLost``) before anything is written, and once its outcome is applied the workflow
refuses it too."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from typing import TYPE_CHECKING, Any

from jobq.errors import IdempotencyConflict, LeaseLost
from jobq.jobs import dumps
from jobq.keys import QueueKeys
from jobq.workflows.graph import NODE_KEY_MAX, POLICY_LETTER, WorkflowInvalid
from jobq.workflows.model import Node, Part, nodes_of
from jobq.workflows.service import prepare_node

if TYPE_CHECKING:
    from jobq.client import Client

ADD_MOST = 1000  # nodes one call adds (bounded script time)


class WorkflowNodeConflict(IdempotencyConflict):
    """A node key added already (or an original node's) with another spec."""


def _add_fingerprint(node: Node) -> str:
    canon = [node.key, node.type, node.payload, [[d.key, d.policy] for d in node.deps],
             node.attempts, node.backoff.model_dump(mode="json") if node.backoff else None,
             node.delay_s, node.priority]
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _ordered(nodes: list[Node]) -> list[Node]:
    """The new nodes, each after the new nodes it depends on; raises WorkflowInvalid on a bad
    key, a key given twice, a self-dependency or a cycle among them."""
    by_key: dict[str, Node] = {}
    for node in nodes:
        if not node.key or len(node.key) > NODE_KEY_MAX or "\n" in node.key:
            raise WorkflowInvalid(f"node key {node.key!r}: 1 to {NODE_KEY_MAX} characters, "
                                  "no newline")
        if node.key in by_key:
            raise WorkflowInvalid(f"node key {node.key!r} is used twice", [{"node": node.key}])
        if any(d.key == node.key for d in node.deps):
            raise WorkflowInvalid(f"node {node.key!r} depends on itself", [{"node": node.key}])
        by_key[node.key] = node
    waiting = {n.key: sum(d.key in by_key for d in n.deps) for n in nodes}
    after: dict[str, list[str]] = {n.key: [] for n in nodes}
    for n in nodes:
        for d in n.deps:
            if d.key in by_key:
                after[d.key].append(n.key)
    ready = deque(k for k, w in waiting.items() if w == 0)
    out: list[Node] = []
    while ready:
        key = ready.popleft()
        out.append(by_key[key])
        for nxt in after[key]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    if len(out) < len(nodes):
        raise WorkflowInvalid("the added nodes have a cycle")
    return out


async def add_nodes(client: Client, q: QueueKeys, job_id: str, token: str, spec: Part | list[Node],
                    waited_by: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """Add ``spec``'s nodes to the workflow of job ``job_id`` (running under ``token``); each
    node of ``waited_by`` (waiting nodes' keys) also waits on the new nodes nothing new depends
    on. Returns node key -> job id of every node of ``spec``."""
    nodes = _ordered(nodes_of(spec))
    if len(nodes) > ADD_MOST:
        raise WorkflowInvalid(f"at most {ADD_MOST} nodes per call, not {len(nodes)}")
    redis: Any = client.redis
    wf, held = await redis.hmget(q.job(job_id), ["wf", "token"])
    if not wf:
        raise WorkflowInvalid(f"job {job_id} is no workflow's node")
    if held != token:
        raise LeaseLost(f"lease on job {job_id} was lost")
    wf_id, idx, epoch = str(wf).split("|")
    relay = client.workflows.relay
    wk = relay.wf.keys(wf_id)
    args: list[Any] = [idx, epoch, len(nodes), len(waited_by)]
    jobs: dict[str, str] = {}
    for node in nodes:
        b = prepare_node(client, wf_id, node)
        jobs[node.key] = b.job_id
        af = _add_fingerprint(node)
        spec_json = dumps({"k": node.key, "q": b.job.queue, "id": b.job_id, "fp": b.fingerprint,
                           "dl": b.delay_ms, "j": b.job.args(), "af": af, "d": []})
        deps = "\n".join(POLICY_LETTER[d.policy] + d.key for d in node.deps)
        args += [node.key, af, spec_json, deps]
    args += list(waited_by)
    score = await relay.announce(wk)
    raw = await client.scripts.call("wf_add_nodes", [wk.meta, wk.prefix_key], args, durable=True)
    code, detail = int(raw[0]), str(raw[1])
    if code == -2:
        await relay.done(wk, score)
        raise WorkflowNodeConflict(f"node key {detail!r} was added with another spec")
    if code == -4:
        await relay.done(wk, score)
        raise WorkflowInvalid(f"cannot add nodes: {detail}")
    await relay.follow_up(wk, await relay.wf.apply(wk, "pending"))
    await relay.done(wk, score)
    return jobs
