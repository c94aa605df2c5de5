"""Creating, reading and cancelling workflows: what ``Client`` offers and the API and CLI call.

Creation is idempotent by key (R24): the workflow id is a digest of the key, so the same key
with the same spec answers the same ids, another spec is a conflict, before anything runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobq.errors import IdempotencyConflict, InvalidPayload, NotFound, UnknownTask
from jobq.jobs import dumps
from jobq.scripts import CONFLICT, DUPLICATE
from jobq.workflows import reopen
from jobq.workflows.graph import POLICY_LETTER, check, dependents
from jobq.workflows.keys import (
    WorkflowKeys,
    node_idempotency_key,
    node_job_id,
    workflow_id_for,
    workflow_index,
)
from jobq.workflows.model import Node, Part, nodes_of
from jobq.workflows.relay import Relay

if TYPE_CHECKING:
    from jobq.client import Client
    from jobq.keys import QueueKeys
    from jobq.scripts import BatchJob

STATE_NAMES = {"W": "waiting", "R": "released", "S": "succeeded", "F": "failed",
               "C": "cancelled", "D": "dep_failed", "K": "skipped"}
LETTERS = {v: k for k, v in STATE_NAMES.items()}
POLICY_NAMES = {v: k for k, v in POLICY_LETTER.items()}
CHUNK_NODES = 250  # nodes one creation call stores at most (bounded script time)
CHUNK_BYTES = 1 << 18  # about this many bytes of node specs per creation call
CREATING_TTL_S = 24 * 3600  # an unsealed workflow (its creator died) expires after this
# A callback's letter, first in its node's spec JSON (lib/workflow_state's callbackRole).
CALLBACK_LETTER = {"on_success": "s", "on_failure": "f"}


@dataclass(frozen=True, slots=True)
class WorkflowCreated:
    workflow_id: str
    duplicate: bool
    jobs: dict[str, str]  # node key -> its job's id (the job exists once the node is released)


@dataclass(frozen=True, slots=True)
class NodeView:
    key: str
    queue: str
    type: str
    job_id: str
    state: str
    waiting_on: list[str]  # dependencies not ended yet (waiting nodes)
    deps: list[dict[str, str]]
    error: str | None = None
    result: Any = None
    epoch: int = 0  # raised by each reopen (DLQ replay, retry): its job id is that epoch's


@dataclass(frozen=True, slots=True)
class WorkflowView:
    workflow_id: str
    idempotency_key: str
    state: str  # running | cancelling | succeeded | failed | cancelled
    counts: dict[str, int]
    created_at_ms: int
    ended_at_ms: int | None
    fail_fast: bool
    nodes: list[NodeView] = field(default_factory=list)
    episode: int = 0  # times it was reopened after it ended (DLQ replay, retry)


def _chunks(args: list[tuple[str, str, str, int]]) -> list[list[tuple[int, str, str, str, int]]]:
    """The nodes in creation chunks of at most CHUNK_NODES nodes and about CHUNK_BYTES bytes
    (a node bigger than that alone), each node with its index."""
    chunks: list[list[tuple[int, str, str, str, int]]] = [[]]
    size = 0
    for i, (key, spec, out, deps) in enumerate(args):
        cost = len(key) + len(spec) + len(out) + 16
        if chunks[-1] and (len(chunks[-1]) >= CHUNK_NODES or size + cost > CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append((i, key, spec, out, deps))
        size += cost
    return chunks


def prepare_node(client: Client, wf_id: str, node: Node) -> BatchJob:
    """Node ``node``'s job as ``enqueue`` would prepare it (validated payload, job id, flow
    keys), with its idempotency key derived from the workflow; errors name the node."""
    from jobq.client import JobRequest  # the client module imports this one

    try:
        return client.prepare(JobRequest(
            node.type, node_idempotency_key(wf_id, node.key), node.payload,
            node.attempts, node.backoff, node.delay_s, node.priority))
    except InvalidPayload as exc:
        raise InvalidPayload(f"node {node.key!r}: {exc}",
                             [{**d, "node": node.key} for d in exc.details]) from None
    except UnknownTask as exc:
        raise UnknownTask(f"node {node.key!r}: {exc}") from None


def _fingerprint(nodes: list[Node], fail_fast: bool) -> str:
    canon = [[n.key, n.type, n.payload, [[d.key, d.policy] for d in n.deps], n.attempts,
              n.backoff.model_dump(mode="json") if n.backoff else None, n.delay_s, n.priority,
              *([n.callback] if n.callback else [])]  # fingerprints without one unchanged
             for n in nodes]
    text = json.dumps({"nodes": canon, "failFast": fail_fast}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Workflows:
    """The workflow operations of one ``Client``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.relay = Relay(client.scripts, client.settings)

    async def create(self, idempotency_key: str, spec: Part | list[Node], *,
                     fail_fast: bool = False) -> WorkflowCreated:
        """Store the workflow and release its roots, once per key. Raises WorkflowInvalid
        (graph), UnknownTask / InvalidPayload (a node's job), IdempotencyConflict."""

        nodes = nodes_of(spec)
        index = check(nodes)
        wf_id = workflow_id_for(idempotency_key)
        wk = self.relay.wf.keys(wf_id)
        out = dependents(nodes, index)
        args: list[tuple[str, str, str, int]] = []
        jobs: dict[str, str] = {}
        for i, node in enumerate(nodes):
            b = prepare_node(self.client, wf_id, node)
            jobs[node.key] = b.job_id
            role = {"cb": CALLBACK_LETTER[node.callback]} if node.callback else {}
            spec_json = dumps({**role, "k": node.key, "q": b.job.queue, "id": b.job_id,
                               "fp": b.fingerprint, "dl": b.delay_ms, "j": b.job.args(),
                               "d": [[index[d.key], POLICY_LETTER[d.policy]]
                                     for d in node.deps]})
            args.append((node.key, spec_json, out[i], len(node.deps)))
        score = await self.relay.announce(wk)
        fingerprint = _fingerprint(nodes, fail_fast)
        if len(chunks := _chunks(args)) == 1:
            code = await self.relay.wf.create(wk, fingerprint, idempotency_key, fail_fast,
                                              self.client.settings.workflow_retention_s, args)
        else:
            code = await self._create_chunked(wk, fingerprint, idempotency_key, fail_fast,
                                              chunks)
        if code == CONFLICT:
            await self.relay.done(wk, score)
            raise IdempotencyConflict(
                f"workflow key {idempotency_key!r} was used with another spec")
        if code != DUPLICATE:
            await self._index(wf_id)
        await self.relay.follow_up(wk, await self.relay.wf.apply(wk, "pending"))
        await self.relay.done(wk, score)
        return WorkflowCreated(wf_id, code == DUPLICATE, jobs)

    async def _create_chunked(self, wk: WorkflowKeys, fingerprint: str, key: str,
                              fail_fast: bool, chunks: list[list[tuple[int, str, str, str, int]]],
                              ) -> int:
        """A large workflow, chunk by chunk (each one bounded script call); the last chunk
        seals it, and nothing is released before. A creation cut short (the process killed)
        is resumed by the next create with the same key, or expires (CREATING_TTL_S)."""
        retention = self.client.settings.workflow_retention_s
        total = sum(len(c) for c in chunks)
        for n, chunk in enumerate(chunks):
            code = await self.relay.wf.create_chunk(wk, fingerprint, key, fail_fast, retention,
                                                    total, CREATING_TTL_S, chunk)
            if code in (CONFLICT, DUPLICATE):
                return code
            if n == 0:
                await self._index(wk.id)  # listed while creating
        return code

    async def _index(self, wf_id: str) -> None:
        """Note the workflow in the listing index (advisory: outside the workflow's slot, like
        the known-queues set); entries older than the retention go at the same time."""
        now_ms = int(time.time() * 1000)
        index = workflow_index(self.client.settings.key_prefix)
        redis: Any = self.client.redis
        await redis.zadd(index, {wf_id: now_ms})
        await redis.zremrangebyscore(
            index, "-inf", now_ms - self.client.settings.workflow_retention_s * 1000 * 2)

    async def recent(self, limit: int = 50) -> list[WorkflowView]:
        """The newest workflows still kept (without their nodes)."""
        redis: Any = self.client.redis
        ids = await redis.zrevrange(workflow_index(self.client.settings.key_prefix), 0,
                                    limit - 1)
        out = []
        for wf_id in ids:
            try:
                out.append(await self.get(wf_id, nodes=False))
            except NotFound:
                continue
        return out

    async def check(self, workflow_id: str) -> list[str]:
        """Recompute every counter from the node states: the mismatches found (none = sound).
        A waiting node's unmet count must be its dependencies still waiting or released, and
        at least one; the counts per state must match; a ready entry must be released."""
        wk = self.relay.wf.keys(workflow_id)
        redis: Any = self.client.redis
        meta, raw_nodes, st, rem, ready = await asyncio.gather(
            redis.hgetall(wk.meta), redis.hgetall(wk.key("nodes")), redis.hgetall(wk.key("st")),
            redis.hgetall(wk.key("rem")), redis.lrange(wk.key("ready"), 0, -1))
        if not meta:
            raise NotFound(f"no workflow {workflow_id}")
        problems = []
        counted = {letter: 0 for letter in STATE_NAMES}
        for idx, raw in raw_nodes.items():
            spec = json.loads(raw)
            state = st.get(idx, "?")
            counted[state] = counted.get(state, 0) + 1
            if state == "W":
                open_deps = sum(st.get(str(d[0])) in ("W", "R") for d in spec["d"])
                if open_deps == 0:
                    problems.append(f"node {spec['k']!r} waits on no open dependency")
                if int(rem.get(idx, -1)) != open_deps:
                    problems.append(f"node {spec['k']!r}: rem {rem.get(idx)} but {open_deps} "
                                    "dependencies open")
        for letter, n in counted.items():
            if int(meta.get(f"n:{letter}", 0)) != n:
                problems.append(f"count of {STATE_NAMES.get(letter, letter)}: "
                                f"{meta.get(f'n:{letter}', 0)} recorded, {n} counted")
        for idx in ready:
            if st.get(idx) != "R":
                problems.append(f"ready entry {idx} is not released ({st.get(idx)})")
        final = meta["state"] in ("succeeded", "failed", "cancelled")
        if final and counted["W"] + counted["R"]:
            problems.append(f"workflow {meta['state']} with nodes still open")
        if not final and not counted["W"] + counted["R"]:
            problems.append("every node ended but the workflow did not")
        return problems

    async def cancel(self, workflow_id: str) -> WorkflowView:
        """Cancel every node not ended: waiting ones at once, queued ones in their queues,
        running ones through their workers (cooperative cancel). Nothing starts afterwards."""
        wk = self.relay.wf.keys(workflow_id)
        if not await self.client.redis.exists(wk.meta):
            raise NotFound(f"no workflow {workflow_id}")
        score = await self.relay.announce(wk)
        await self.relay.follow_up(wk, await self.relay.wf.apply(wk, "cancel"))
        await self.relay.done(wk, score)
        return await self.get(workflow_id)

    async def retry(self, workflow_id: str, mode: str) -> WorkflowView:
        """Run the nodes ``mode`` chooses again (jobq/workflows/reopen.py)."""
        await reopen.retry(self.relay, workflow_id, mode)
        return await self.get(workflow_id)

    async def replay_node(self, q: QueueKeys, dlq_id: str, original_job_id: str,
                          wf: str) -> reopen.NodeReplay | None:
        """A DLQ replay of a node: reopen it, and note the replay beside the entry (its replay
        log) and on the new job (its lineage), as a plain replay does. None: the workflow is
        gone, replay the entry as a plain job."""
        replayed = await reopen.replay_node(self.relay, wf, q.queue)
        if replayed is None or replayed.duplicate:
            return replayed
        now_ms = int(time.time() * 1000)
        redis: Any = self.client.redis
        await redis.lpush(q.dlq_replays(dlq_id), dumps({"jobId": replayed.job_id,
                                                        "replayedAt": now_ms}))
        if await redis.exists(q.job(replayed.job_id)):  # never a partial hash of a trimmed one
            await redis.hset(q.job(replayed.job_id), mapping={
                "replayedFromJobId": original_job_id, "dlqId": dlq_id, "replayedAt": now_ms})
        return replayed

    async def get(self, workflow_id: str, *, results: bool = False,
                  nodes: bool = True) -> WorkflowView:
        """The workflow, its counts and every node (its job id, state, what it waits on)."""
        wk = self.relay.wf.keys(workflow_id)
        redis: Any = self.client.redis
        meta, raw_nodes, st, err, ep, res = await asyncio.gather(
            redis.hgetall(wk.meta),
            *(redis.hgetall(wk.key(name)) if nodes else _empty()
              for name in ("nodes", "st", "err", "ep")),
            redis.hgetall(wk.key("res")) if results and nodes else _empty())
        if not meta:
            raise NotFound(f"no workflow {workflow_id}")
        specs = {int(i): json.loads(raw) for i, raw in raw_nodes.items()}
        names = {i: s["k"] for i, s in specs.items()}
        views = []
        for i in sorted(specs):
            s = specs[i]
            state = STATE_NAMES.get(st.get(str(i), ""), "unknown")
            deps = [{"node": names[d[0]], "policy": POLICY_NAMES[d[1]],
                     "state": STATE_NAMES.get(st.get(str(d[0]), ""), "unknown")} for d in s["d"]]
            waiting_on = [d["node"] for d in deps
                          if state == "waiting" and d["state"] in ("waiting", "released")]
            result = json.loads(res[str(i)]) if str(i) in res else None
            epoch = int(ep.get(str(i), 0))  # a reopened node's job is its epoch's
            job_id = node_job_id(workflow_id, s["q"], s["k"], epoch) if epoch else s["id"]
            views.append(NodeView(s["k"], s["q"], s["j"][0], job_id, state, waiting_on, deps,
                                  err.get(str(i)), result, epoch))
        return WorkflowView(
            workflow_id, meta.get("key", ""), meta["state"],
            {name: int(meta.get(f"n:{letter}", 0)) for letter, name in STATE_NAMES.items()},
            int(meta["createdAt"]), int(meta["endedAt"]) if "endedAt" in meta else None,
            meta.get("failFast") == "1", views, int(meta.get("episode", 0)))

    async def for_key(self, idempotency_key: str) -> WorkflowView:
        return await self.get(workflow_id_for(idempotency_key))

    def keys(self, workflow_id: str) -> WorkflowKeys:
        return self.relay.wf.keys(workflow_id)


async def _empty() -> dict[str, str]:
    return {}
