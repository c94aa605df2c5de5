"""Checks a workflow's graph before anything is stored: duplicate or empty keys, unknown
dependencies, self-loops and cycles (Kahn's algorithm) are refused with the offending keys, and
each node's dependents are computed for the create script."""

from __future__ import annotations

from collections import deque

from jobq.errors import JobqError
from jobq.workflows.model import POLICIES, Node

MAX_NODES = 100_000  # nodes one workflow may hold (bounded memory and create time)
NODE_KEY_MAX = 200  # characters of a node key


class WorkflowInvalid(JobqError):
    """The workflow's graph cannot run: unknown dependency, cycle, duplicate key (HTTP 422)."""

    def __init__(self, message: str, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


def check(nodes: list[Node]) -> dict[str, int]:
    """Each node key's index; raises WorkflowInvalid."""
    if len(nodes) > MAX_NODES:
        raise WorkflowInvalid(f"a workflow holds at most {MAX_NODES} nodes, not {len(nodes)}")
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not node.key or len(node.key) > NODE_KEY_MAX:
            raise WorkflowInvalid(f"node {i}: a key of 1 to {NODE_KEY_MAX} characters is needed",
                                  [{"node": i}])
        if node.key in index:
            raise WorkflowInvalid(f"node key {node.key!r} is used twice", [{"node": node.key}])
        index[node.key] = i
    for node in nodes:
        seen: set[str] = set()
        for dep in node.deps:
            if dep.key not in index:
                raise WorkflowInvalid(f"node {node.key!r} depends on unknown node {dep.key!r}",
                                      [{"node": node.key, "dependency": dep.key}])
            if dep.key == node.key:
                raise WorkflowInvalid(f"node {node.key!r} depends on itself",
                                      [{"node": node.key}])
            if dep.policy not in POLICIES:
                raise WorkflowInvalid(f"node {node.key!r}: unknown policy {dep.policy!r}",
                                      [{"node": node.key, "policy": dep.policy}])
            if dep.key in seen:
                raise WorkflowInvalid(f"node {node.key!r} lists {dep.key!r} twice",
                                      [{"node": node.key, "dependency": dep.key}])
            seen.add(dep.key)
    _acyclic(nodes, index)
    _callbacks(nodes)
    return index


def _callbacks(nodes: list[Node]) -> None:
    """An on_failure callback waits on its members with ``ignore`` (a ``require`` edge would
    make it dep_failed on the very failure it is for), and on at least one."""
    for node in nodes:
        if node.callback != "on_failure":
            continue
        if not node.deps or any(d.policy != "ignore" for d in node.deps):
            raise WorkflowInvalid(f"on_failure node {node.key!r} needs dependencies, each with "
                                  "policy ignore", [{"node": node.key}])


def _acyclic(nodes: list[Node], index: dict[str, int]) -> None:
    waiting = [len(n.deps) for n in nodes]
    dependents: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for dep in node.deps:
            dependents[index[dep.key]].append(i)
    ready = deque(i for i, w in enumerate(waiting) if w == 0)
    done = 0
    while ready:
        i = ready.popleft()
        done += 1
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if done < len(nodes):
        stuck = sorted(nodes[i].key for i, w in enumerate(waiting) if w > 0)
        raise WorkflowInvalid(f"the graph has a cycle through {', '.join(stuck[:10])}",
                              [{"cycle": stuck[:100]}])


POLICY_LETTER = {"require": "r", "ignore": "i", "continue": "c"}


def dependents(nodes: list[Node], index: dict[str, int]) -> list[str]:
    """Per node, its dependents as the create script stores them: ``"<idx>:<policy>,..."``."""
    out: list[list[str]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for dep in node.deps:
            out[index[dep.key]].append(f"{i}:{POLICY_LETTER[dep.policy]}")
    return [",".join(edges) for edges in out]
