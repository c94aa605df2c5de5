"""Workflows: DAGs of jobs across queues whose dependents are released exactly once (R24).

Build a spec with ``Node``, ``chain``, ``group``, ``chord`` and ``batch``; create it with
``Client.create_workflow``. How it works: docs/architecture.md, "Workflows"."""

from jobq.workflows.graph import WorkflowInvalid
from jobq.workflows.model import Dep, Fragment, Node, Policy, batch, chain, chord, group
from jobq.workflows.service import NodeView, WorkflowCreated, WorkflowView

__all__ = ["Dep", "Fragment", "Node", "NodeView", "Policy", "WorkflowCreated", "WorkflowInvalid",
           "WorkflowView", "batch", "chain", "chord", "group"]
