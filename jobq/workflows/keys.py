"""The Redis keys of a workflow: all in its own slot ``<prefix>:{wf:<id>}``, ``<id>`` being 32
hex characters of SHA-256 of its idempotency key, so workflows spread over a cluster's
primaries and no user text reaches a key name (R21). The intent index is sharded over
INTENT_SHARDS slots of its own. Node jobs live in their queues' slots, as every job does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from jobq.keys import job_id_for

WORKFLOW_ID_CHARS = 32
INTENT_SHARDS = 8  # intent zsets; the sweeper reads each one every INTENT_SWEEP_S


def workflow_id_for(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:WORKFLOW_ID_CHARS]


def is_workflow_id(text: str) -> bool:
    return len(text) == WORKFLOW_ID_CHARS and all(c in "0123456789abcdef" for c in text)


def node_idempotency_key(workflow_id: str, node_key: str, epoch: int = 0) -> str:
    """The idempotency key of a node's job: one job per (workflow, node, epoch) (R24)."""
    return f"wf:{workflow_id}:{epoch}:{node_key}"


def node_job_id(workflow_id: str, queue: str, node_key: str, epoch: int = 0) -> str:
    return job_id_for(queue, node_idempotency_key(workflow_id, node_key, epoch))


@dataclass(frozen=True, slots=True)
class WorkflowKeys:
    prefix: str
    id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{wf:{self.id}}}"

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    @property
    def prefix_key(self) -> str:
        """``<base>:``: a key that never exists, declared by the scripts that name the
        workflow's keys in Lua (the slot-migration fence, tests/test_script_fences.py)."""
        return f"{self.base}:"

    def key(self, suffix: str) -> str:
        """One of lib/workflow_state's WF_SUFFIXES: nodes, keys, names, st, rem, out, res,
        err, ready, kill, ep."""
        return f"{self.base}:{suffix}"

    @property
    def intent(self) -> str:
        """The intent shard that indexes this workflow while work on it is in flight."""
        return intent_key(self.prefix, int(self.id[:4], 16) % INTENT_SHARDS)


def intent_key(prefix: str, shard: int) -> str:
    return f"{prefix}:{{wfintent:{shard}}}"


def outbox_keys(queue_base: str) -> tuple[str, str]:
    """A queue's outbox hash and due zset, from its ``<prefix>:{q}`` base."""
    return f"{queue_base}:wfout", f"{queue_base}:wfout:due"


def outbox_wake_key(queue_base: str) -> str:
    """A queue's outbox wake list (one token at most, pushed by the finish scripts with an
    outbox entry): a relay blocked on it starts at once instead of at its next poll."""
    return f"{queue_base}:wfout:wake"


def workflow_index(prefix: str) -> str:
    """The listing index (zset: workflow id -> creation ms), outside any workflow's slot."""
    return f"{prefix}:workflows"
