"""Read-only views of workflows for the API pages, the SSE stream and the dashboard: the
listing, nodes and results paged by node index, and the graph with large groups collapsed.

Every read is bounded: pages by their limit, the listing by LIST_SCAN_MOST ids per call, and
the whole-graph reads (graph, state snapshots) by HSCAN batches, so a 20,000-node workflow
never holds Redis for one long command."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from jobq.errors import InvalidCursor, NotFound
from jobq.workflows.keys import WorkflowKeys, is_workflow_id, workflow_index
from jobq.workflows.service import POLICY_NAMES, STATE_NAMES

if TYPE_CHECKING:
    from jobq.client import Client

T = TypeVar("T")
FINAL = ("succeeded", "failed", "cancelled")
WORKFLOW_STATES = ("running", "cancelling", *FINAL)
LIST_SCAN_MOST = 1000  # listing ids read per call while filtering by state
WAITING_ON_MOST = 20  # dependency keys a page names per waiting node (the count is exact)
GROUP_MIN = 4  # nodes alike in deps and dependents collapse into one graph entry from this many
GROUP_SAMPLE = 5  # node keys a collapsed group names
SCAN_COUNT = 1000  # HSCAN batch
ENDED = ("succeeded", "failed", "cancelled", "dep_failed", "skipped")


def decode_cursor(cursor: str | None) -> int:
    """A page cursor is the next index (listing position or node index) in decimal."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 12:
        raise InvalidCursor(f"invalid cursor {cursor[:40]!r}")
    return int(cursor)


@dataclass(frozen=True, slots=True)
class Summary:
    workflow_id: str
    idempotency_key: str
    state: str
    counts: dict[str, int]
    nodes: int
    created_at_ms: int
    ended_at_ms: int | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    index: int
    key: str
    queue: str
    type: str
    job_id: str
    state: str
    epoch: int
    waiting_on: list[str]  # first WAITING_ON_MOST open dependencies of a waiting node
    waiting_count: int  # all of them
    deps: int
    error: str | None


@dataclass(frozen=True, slots=True)
class ResultRow:
    key: str
    state: str
    result: Any
    error: str | None


@dataclass(slots=True)
class GraphEntry:
    """One node, or a group of nodes with the same queue, type, dependencies and dependents."""

    id: str
    keys: list[str]  # the node's key, or the first GROUP_SAMPLE keys of a group
    size: int
    queue: str
    type: str
    depth: int
    counts: dict[str, int]
    job_id: str | None = None  # single nodes
    state: str | None = None  # single nodes
    waiting_on: list[str] = field(default_factory=list)  # single waiting nodes


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    target: str
    policy: str


@dataclass(frozen=True, slots=True)
class Graph:
    workflow_id: str
    state: str
    entries: list[GraphEntry]
    edges: list[GraphEdge]


def _summary(wf_id: str, meta: dict[str, str]) -> Summary:
    counts = {name: int(meta.get(f"n:{letter}", 0)) for letter, name in STATE_NAMES.items()}
    return Summary(wf_id, meta.get("key", ""), meta["state"], counts, sum(counts.values()),
                   int(meta.get("createdAt", 0)),
                   int(meta["endedAt"]) if "endedAt" in meta else None)


class WorkflowReads:
    """The read-only workflow views of one ``Client``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.redis: Any = client.redis
        self.prefix = client.settings.key_prefix

    def keys(self, wf_id: str) -> WorkflowKeys:
        if not is_workflow_id(wf_id):
            raise NotFound(f"no workflow {wf_id}")
        return WorkflowKeys(self.prefix, wf_id)

    async def summary(self, wf_id: str) -> Summary:
        meta = await self.redis.hgetall(self.keys(wf_id).meta)
        if not meta:
            raise NotFound(f"no workflow {wf_id}")
        return _summary(wf_id, meta)

    async def recent(self, state: str | None, limit: int, cursor: str | None) -> Page[Summary]:
        """The newest workflows still kept, newest first, optionally in one state. With a
        state, at most LIST_SCAN_MOST ids are looked at per call: a page may hold fewer than
        ``limit`` and still have a next cursor."""
        start = decode_cursor(cursor)
        scan = limit + 1 if state is None else max(limit, LIST_SCAN_MOST)  # +1: is there more
        ids: list[str] = await self.redis.zrevrange(workflow_index(self.prefix), start,
                                                    start + scan - 1)
        valid = [i for i in ids if is_workflow_id(i)]
        # One pipeline, not one command per id: a gather would take a pooled connection
        # each (a cluster pipeline groups the reads per node).
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in valid:
                pipe.hgetall(WorkflowKeys(self.prefix, i).meta)
            metas = await pipe.execute() if valid else []
        meta_of = dict(zip(valid, metas, strict=True))
        items: list[Summary] = []
        pos = start
        for n, wf_id in enumerate(ids):
            pos = start + n + 1
            meta = meta_of.get(wf_id)
            if meta and (state is None or meta.get("state") == state):
                items.append(_summary(wf_id, meta))
                if len(items) == limit:
                    break
        more = pos < start + len(ids) or len(ids) == scan
        return Page(items, str(pos) if more else None)

    async def nodes(self, wf_id: str, limit: int, cursor: str | None) -> Page[NodeRow]:
        """Nodes ``cursor`` … ``cursor + limit - 1`` (by index, the order of the spec)."""
        wk = self.keys(wf_id)
        start = decode_cursor(cursor)
        total = await self._total(wk)
        idx = [str(i) for i in range(start, min(start + limit, total))]
        if not idx:
            return Page([], None)
        specs, st, ep, err = await asyncio.gather(
            self.redis.hmget(wk.key("nodes"), idx), self.redis.hmget(wk.key("st"), idx),
            self.redis.hmget(wk.key("ep"), idx), self.redis.hmget(wk.key("err"), idx))
        parsed = [json.loads(s) if s else None for s in specs]
        # What each waiting node still waits on: its dependencies' states, one read.
        dep_idx = sorted({str(d[0]) for s, letter in zip(parsed, st, strict=True)
                          if s and letter == "W" for d in s["d"]})
        dep_states: dict[str, str | None] = {}
        dep_names: dict[str, str | None] = {}
        if dep_idx:
            dep_st, dep_nm = await asyncio.gather(self.redis.hmget(wk.key("st"), dep_idx),
                                                  self.redis.hmget(wk.key("names"), dep_idx))
            dep_states = dict(zip(dep_idx, dep_st, strict=True))
            dep_names = dict(zip(dep_idx, dep_nm, strict=True))
        rows = []
        for i, s, letter, epoch, error in zip(idx, parsed, st, ep, err, strict=True):
            if s is None:
                continue
            open_deps = [dep_names.get(str(d[0])) or str(d[0]) for d in s["d"]
                         if letter == "W" and dep_states.get(str(d[0])) in ("W", "R")]
            rows.append(NodeRow(int(i), s["k"], s["q"], s["j"][0], s["id"],
                                STATE_NAMES.get(letter or "", "unknown"), int(epoch or 0),
                                open_deps[:WAITING_ON_MOST], len(open_deps), len(s["d"]), error))
        end = start + len(idx)
        return Page(rows, str(end) if end < total else None)

    async def results(self, wf_id: str, limit: int, cursor: str | None) -> Page[ResultRow]:
        """Ended nodes among ``cursor`` … ``cursor + limit - 1``: key → result or error. Read
        from the workflow's own hashes, so they outlive the node jobs (trimmed by their
        queues) until the workflow expires."""
        wk = self.keys(wf_id)
        start = decode_cursor(cursor)
        total = await self._total(wk)
        idx = [str(i) for i in range(start, min(start + limit, total))]
        if not idx:
            return Page([], None)
        names, st, res, err = await asyncio.gather(
            self.redis.hmget(wk.key("names"), idx), self.redis.hmget(wk.key("st"), idx),
            self.redis.hmget(wk.key("res"), idx), self.redis.hmget(wk.key("err"), idx))
        rows = [ResultRow(name, STATE_NAMES[letter], json.loads(r) if r is not None else None, e)
                for name, letter, r, e in zip(names, st, res, err, strict=True)
                if name is not None and STATE_NAMES.get(letter or "") in ENDED]
        end = start + len(idx)
        return Page(rows, str(end) if end < total else None)

    async def _total(self, wk: WorkflowKeys) -> int:
        exists, total = await asyncio.gather(self.redis.exists(wk.meta),
                                             self.redis.hlen(wk.key("nodes")))
        if not exists:
            raise NotFound(f"no workflow {wk.id}")
        return int(total)

    async def states(self, wf_id: str) -> dict[int, str]:
        """Every node's state letter, read in HSCAN batches."""
        return {int(i): v async for i, v in self._scan(self.keys(wf_id).key("st"))}

    async def _scan(self, key: str) -> Any:
        async for item in self.redis.hscan_iter(key, count=SCAN_COUNT):
            yield item

    async def graph(self, wf_id: str) -> Graph:
        """Nodes and edges with their policies; nodes alike (same queue, type, dependencies
        and dependents, GROUP_MIN or more) are one entry with counts per state, so a fan-out
        of 20,000 answers a handful of entries."""
        wk = self.keys(wf_id)
        summary = await self.summary(wf_id)
        specs: dict[int, dict[str, Any]] = {}
        async for i, raw in self._scan(wk.key("nodes")):
            s = json.loads(raw)
            specs[int(i)] = {"k": s["k"], "q": s["q"], "t": s["j"][0], "id": s["id"],
                             "d": [(int(d[0]), str(d[1])) for d in s["d"]]}
        st = await self.states(wf_id)
        return _collapse(summary, specs, st)


def _depths(specs: dict[int, dict[str, Any]]) -> dict[int, int]:
    """Longest path from a root, per node (Kahn's order: the graph is acyclic)."""
    depth = dict.fromkeys(specs, 0)
    outs: dict[int, list[int]] = {i: [] for i in specs}
    indeg = dict.fromkeys(specs, 0)
    for i, s in specs.items():
        for d, _ in s["d"]:
            if d in outs:
                outs[d].append(i)
                indeg[i] += 1
    ready = [i for i, n in indeg.items() if n == 0]
    while ready:
        i = ready.pop()
        for j in outs[i]:
            depth[j] = max(depth[j], depth[i] + 1)
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    return depth


def _collapse(summary: Summary, specs: dict[int, dict[str, Any]], st: dict[int, str]) -> Graph:
    outs: dict[int, list[tuple[int, str]]] = {i: [] for i in specs}
    for i, s in specs.items():
        for d, p in s["d"]:
            if d in outs:
                outs[d].append((i, p))
    signature: dict[tuple[Any, ...], list[int]] = {}
    for i in sorted(specs):
        s = specs[i]
        sig = (s["q"], s["t"], tuple(sorted(s["d"])), tuple(sorted(outs[i])))
        signature.setdefault(sig, []).append(i)
    depth = _depths(specs)
    entry_of: dict[int, str] = {}
    entries: list[GraphEntry] = []
    for members in signature.values():
        first = specs[members[0]]
        if len(members) >= GROUP_MIN:
            eid = f"g{members[0]}"
            counts = dict.fromkeys(STATE_NAMES.values(), 0)
            for i in members:
                counts[STATE_NAMES.get(st.get(i, ""), "waiting")] += 1
                entry_of[i] = eid
            entries.append(GraphEntry(eid, [specs[i]["k"] for i in members[:GROUP_SAMPLE]],
                                      len(members), first["q"], first["t"],
                                      depth[members[0]], counts))
            continue
        for i in members:
            s = specs[i]
            state = STATE_NAMES.get(st.get(i, ""), "unknown")
            waiting_on = [specs[d]["k"] for d, _ in s["d"]
                          if state == "waiting" and st.get(d) in ("W", "R")]
            entry_of[i] = f"n{i}"
            entries.append(GraphEntry(f"n{i}", [s["k"]], 1, s["q"], s["t"], depth[i],
                                      {state: 1}, s["id"], state,
                                      waiting_on[:WAITING_ON_MOST]))
    edges = sorted({(entry_of[d], entry_of[i], POLICY_NAMES[p])
                    for i, s in specs.items() for d, p in s["d"] if d in entry_of})
    entries.sort(key=lambda e: (e.depth, e.id))
    return Graph(summary.workflow_id, summary.state, entries,
                 [GraphEdge(a, b, p) for a, b, p in edges])


def changed(before: dict[int, str], after: dict[int, str]) -> Iterable[int]:
    """Node indexes whose state letter differs between two snapshots."""
    return (i for i, letter in after.items() if before.get(i) != letter)
