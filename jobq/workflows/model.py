"""What a workflow is: a DAG of nodes, each one job (task type, payload, options, any queue)
with a stable key, and edges ``dep -> node`` with a failure policy. ``chain``, ``group``,
``chord`` and ``batch`` build fragments of one DAG; fragments nest (a chord inside a chord is
one DAG, not a second engine)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from jobq.jobs import Backoff

Policy = Literal["require", "ignore", "continue"]
Callback = Literal["on_success", "on_failure"]
"""A callback node's role. ``on_success`` runs at most once ever (a retry never re-runs it
once it succeeded); ``on_failure`` runs when every member has ended and one failed, and is
``skipped`` when none did."""
POLICIES: tuple[Policy, ...] = ("require", "ignore", "continue")
"""``require`` (default): a dependency that fails or is cancelled makes the dependent
``dep_failed``. ``ignore``: the dependency counts as satisfied whatever its outcome (its error
is shown to the dependent). ``continue``: a failed dependency releases the dependent at once."""


@dataclass(frozen=True, slots=True)
class Dep:
    """An edge: the node waits on node ``key`` under ``policy``."""

    key: str
    policy: Policy = "require"


@dataclass(frozen=True, slots=True)
class Node:
    """One node: a job of task ``type`` with ``payload``, known in its workflow by ``key``."""

    key: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    deps: tuple[Dep, ...] = ()
    attempts: int | None = None
    backoff: Backoff | None = None
    delay_s: float = 0.0
    priority: int | None = None
    callback: Callback | None = None  # set by batch(on_success=, on_failure=)

    def after(self, *deps: str | Dep) -> Node:
        """This node, also waiting on ``deps`` (keys, or ``Dep`` with a policy)."""
        more = tuple(d if isinstance(d, Dep) else Dep(d) for d in deps)
        return replace(self, deps=self.deps + more)


@dataclass(frozen=True, slots=True)
class Fragment:
    """Part of a DAG: its nodes, the keys nothing inside it waits on (``sources``) and the keys
    nothing inside it depends on (``sinks``). What follows a fragment waits on its sinks."""

    nodes: tuple[Node, ...]
    sources: tuple[str, ...]
    sinks: tuple[str, ...]


Part = Node | Fragment


def _fragment(part: Part) -> Fragment:
    if isinstance(part, Node):
        return Fragment((part,), (part.key,), (part.key,))
    return part


def _wait_on(fragment: Fragment, keys: tuple[str, ...], policy: Policy) -> Fragment:
    """``fragment`` whose sources also wait on ``keys``."""
    if not keys:
        return fragment
    edges = tuple(Dep(k, policy) for k in keys)
    sources = set(fragment.sources)
    nodes = tuple(replace(n, deps=n.deps + edges) if n.key in sources else n
                  for n in fragment.nodes)
    return Fragment(nodes, fragment.sources, fragment.sinks)


def group(*parts: Part) -> Fragment:
    """Parts side by side, with no edge between them. An empty group is a fragment with no
    nodes: what follows it starts at once."""
    frags = [_fragment(p) for p in parts]
    return Fragment(tuple(n for f in frags for n in f.nodes),
                    tuple(k for f in frags for k in f.sources),
                    tuple(k for f in frags for k in f.sinks))


def chain(*parts: Part, policy: Policy = "require") -> Fragment:
    """Parts one after another: each part's sources wait on the previous part's sinks (an
    empty part is skipped over)."""
    nodes: list[Node] = []
    sources: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ()
    for part in parts:
        frag = _wait_on(_fragment(part), sinks, policy)
        if not frag.nodes:
            continue
        nodes += frag.nodes
        sources = sources or frag.sources
        sinks = frag.sinks
    return Fragment(tuple(nodes), sources, sinks)


def chord(header: Part, body: Part, policy: Policy = "require") -> Fragment:
    """``body`` runs once every node of ``header`` has ended (Celery's chord): a chain of two."""
    return chain(header, body, policy=policy)


def batch(*parts: Part, on_success: Node | None = None,
          on_complete: Node | None = None, on_failure: Node | None = None) -> Fragment:
    """Sidekiq's batch: ``on_success`` runs when every job succeeded (else it ends
    ``dep_failed``), ``on_complete`` when every job has ended, whatever the outcome, and
    ``on_failure`` when every job has ended and one failed, was cancelled or is dep_failed
    (else it ends ``skipped``; it reads the failures from ``ctx.workflow_inputs()``). What
    follows the batch does not wait on ``on_failure``: it is a side branch."""
    body = group(*parts)
    out = [body]
    if on_success is not None:
        out.append(_wait_on(_fragment(replace(on_success, callback="on_success")),
                            body.sinks, "require"))
    if on_complete is not None:
        out.append(_wait_on(_fragment(on_complete), body.sinks, "ignore"))
    whole = group(*out)
    if on_failure is None:
        return whole
    side = _wait_on(_fragment(replace(on_failure, callback="on_failure")), body.sinks, "ignore")
    return Fragment(whole.nodes + side.nodes, whole.sources, whole.sinks)


def nodes_of(spec: Part | list[Node]) -> list[Node]:
    """The nodes of a spec: a node, a fragment, or a list of nodes with their own edges."""
    if isinstance(spec, list):
        return spec
    return list(_fragment(spec).nodes)
