"""Running nodes of a workflow again (R24): a DLQ replay of a dead-lettered node reopens its
workflow, and a retry reruns chosen nodes. Both run ``wf_reopen`` in the workflow's slot,
which gives each node a new epoch (a new job id; an outcome of the old epoch changes
nothing), then release the nodes it made ready in their queues' slots, as any release: one
slot per script, the workflow and the queues meeting only through the relay, announced in an
intent shard first so a crash in between is finished by the sweeper (about 7 s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from jobq.connection import result_of
from jobq.errors import JobqError, NotFound
from jobq.logs import get_logger
from jobq.workflows.keys import is_workflow_id, node_job_id
from jobq.workflows.scripts import NO_NODE, NOT_FAILED, REFUSED, REOPENED, Reopened

if TYPE_CHECKING:
    from jobq.workflows.relay import Relay

log = get_logger("jobq.workflows")

RetryMode = Literal["failed_only", "failed_and_downstream", "all"]
RETRY_MODES: tuple[str, ...] = get_args(RetryMode)


class WorkflowBusy(JobqError):
    """The workflow cannot be reopened now: a retry while it runs or cancels, or a replay of a
    node of a cancelled workflow (HTTP 409)."""


@dataclass(frozen=True, slots=True)
class NodeReplay:
    """What a DLQ replay of a workflow node did: the node's job of its new epoch, and whether
    an earlier replay (or a retry) had reopened it already (``duplicate``)."""

    job_id: str
    duplicate: bool


async def replay_node(relay: Relay, wf: str, queue: str) -> NodeReplay | None:
    """Reopen the node of DLQ entry field ``wf`` ("<workflow id>|<index>|<epoch>") and
    release it under its next epoch. None when its workflow is gone (expired): the caller
    replays the entry as a plain job. Raises WorkflowBusy (workflow cancelled) or NotFound."""
    wf_id, idx, epoch = wf.split("|")
    if not is_workflow_id(wf_id):
        return None
    wk = relay.wf.keys(wf_id)
    score = await relay.announce(wk)
    answer = await relay.wf.reopen(wk, "replay", idx, epoch)
    if answer.step.state == "":
        await relay.done(wk, score)
        return None
    await relay.follow_up(wk, answer.step)
    await relay.done(wk, score)
    if answer.code == REFUSED:
        raise WorkflowBusy(f"workflow {wf_id} was cancelled: retry it "
                           f"(POST /workflows/{wf_id}/retry) to run its nodes again")
    if answer.code in (NO_NODE, NOT_FAILED):
        raise WorkflowBusy(f"node {idx} of workflow {wf_id} is not failed at epoch {epoch}")
    key = await result_of(relay.scripts.redis.hget(wk.key("names"), idx))
    if key is None:
        raise NotFound(f"no node {idx} in workflow {wf_id}")
    log.info("workflow.node_replayed", workflow=wf_id, node=key, epoch=answer.epoch,
             duplicate=answer.code != REOPENED)
    return NodeReplay(node_job_id(wf_id, queue, str(key), answer.epoch),
                      answer.code != REOPENED)


async def retry(relay: Relay, workflow_id: str, mode: str) -> Reopened:
    """Run the nodes ``mode`` chooses again, each under a new epoch. Raises NotFound,
    WorkflowBusy (still running or cancelling), ValueError (unknown mode)."""
    if mode not in RETRY_MODES:
        raise ValueError(f"unknown retry mode {mode!r}: one of {', '.join(RETRY_MODES)}")
    wk = relay.wf.keys(workflow_id)
    score = await relay.announce(wk)
    answer = await relay.wf.reopen(wk, mode)
    if answer.step.state == "":
        await relay.done(wk, score)
        raise NotFound(f"no workflow {workflow_id}")
    await relay.follow_up(wk, answer.step)
    await relay.done(wk, score)
    if answer.code == REFUSED:
        raise WorkflowBusy(f"workflow {workflow_id} is {answer.step.state}: retry it once it "
                           "has ended")
    log.info("workflow.retried", workflow=workflow_id, mode=mode,
             reopened=answer.code == REOPENED)
    return answer
