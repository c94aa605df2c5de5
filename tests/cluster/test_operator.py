"""The operator as a local process against the real API server, with exactly the RBAC of the
chart's ServiceAccount (a missing rule fails these tests), real Redis and real workers.

JobSchedules fire one job per bucket across a kill -9 restart and with two operators at once;
status, conditions and Events are written; a bad time zone is reported; deletion never hangs.
A worker Deployment is scaled up from its backlog, down after the delay, to zero and back.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures import Proc, events, eventually, process_env, scrape
from redis.asyncio import Redis

from jobq.client import Client
from jobq.keys import QueueKeys
from jobq.settings import Settings
from jobq.tasks import load_registry
from jobq.workflows.keys import workflow_id_for

from .controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobq"
RELEASE = "jq"
OPERATOR_SA = f"{RELEASE}-jobq-operator"  # "<fullname>-operator", fullname "<release>-jobq"
QUEUE = "bench-queue"  # the `noop` task's queue (tests/testtasks.py)
TEST_DEPLOYMENTS = ("workers", "watched")  # what the autoscaling tests create and scale
# An operator killed with -9 stays in the KopfPeering for kopf's peering lifetime (60 s), and
# pauses any newcomer of a lower or equal priority until then: so those that get killed run
# with a low priority, and every other starts with this one.
ACTING_PRIORITY = 1_000_000
KEY = re.compile(r"^schedule:(?P<ns>[^/]+)/(?P<name>[^:]+):(?P<bucket>.+)$")
REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<count>\S+)$")


@dataclass(frozen=True)
class Install:
    namespace: str
    kubeconfig: Path  # the operator ServiceAccount's token: the chart's RBAC, nothing more


@pytest.fixture(scope="module")
def install(control_plane: ControlPlane) -> Iterator[Install]:
    """The chart in a namespace of its own; worker Deployments unannotated (autoscaling off) so
    that only the test's own Deployment is autoscaled."""
    namespace = f"op-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.helm(
        "install", RELEASE, CHART, "--namespace", namespace,
        "--set", "autoscaling.enabled=false", "--set", "redis.enabled=false",
        "--set", "externalRedis.url=redis://unused.invalid:6379/0",
        "--set", "api.replicas=1", "--set", "operator.replicas=1",
        # The test's own Deployments: the operator's Role may scale only those it names.
        "--set", f"autoscaling.extraDeployments={{{','.join(TEST_DEPLOYMENTS)}}}",
        timeout_s=240,
    )
    yield Install(namespace, control_plane.service_account_kubeconfig(namespace, OPERATOR_SA))
    control_plane.helm("uninstall", RELEASE, "--namespace", namespace, check=False)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def start_operator(
    spawn: Callable[..., Proc], settings: Settings, install: Install
) -> Callable[..., Proc]:
    def start(*extra: str, priority: int = ACTING_PRIORITY, name: str = "operator") -> Proc:
        env = process_env(settings, KUBECONFIG=str(install.kubeconfig))
        args = ["operator", "--namespace", install.namespace, "--metrics-port", "0",
                "--priority", str(priority), *extra]
        return spawn(args, env, name=name)

    return start


def kube_json(plane: ControlPlane, *args: str) -> Any:
    return json.loads(plane.kubectl(*args, "-o", "json").stdout)


def apply(plane: ControlPlane, namespace: str, body: dict[str, Any]) -> None:
    plane.kubectl("apply", "--namespace", namespace, "-f", "-", input=json.dumps(body))


def schedule(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobq.io/v1", "kind": "JobSchedule", "metadata": {"name": name},
            "spec": {"type": "noop", "payload": {"n": 1}, **spec}}


def k8s_events(plane: ControlPlane, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    found = kube_json(plane, "get", "events", "--namespace", namespace, "--field-selector",
                      f"involvedObject.name={name},reason={reason}")
    return list(found["items"])


def ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return dict(condition)
    return None


async def started(proc: Proc, state: str = "operator.active") -> dict[str, Any]:
    """The operator's start event, once it has reached ``state`` (active or paused)."""

    async def check() -> dict[str, Any] | None:
        if proc.popen.poll() is not None:
            raise AssertionError(f"operator exited {proc.popen.returncode}:\n{proc.output()}")
        begun = events(proc, "operator.started")
        return begun[0] if begun and events(proc, state) else None

    return await eventually(check, timeout=60, what=f"{proc.args} to be {state}")


async def schedule_jobs(redis: Redis, settings: Settings, name: str) -> list[dict[str, str]]:
    """Every job in the queue that this schedule created, oldest first."""
    q = QueueKeys(settings.key_prefix, QUEUE)
    jobs = []
    for job_id in await redis.lrange(q.wait, 0, -1):
        job = await redis.hgetall(q.job(job_id))
        match = KEY.match(job.get("key", ""))
        if match and match["name"] == name:
            jobs.append(job)
    return sorted(jobs, key=lambda job: job["key"])


def assert_one_job_per_bucket(jobs: list[dict[str, str]], every_s: int) -> list[datetime]:
    buckets = [datetime.fromisoformat(KEY.match(job["key"])["bucket"]) for job in jobs]  # type: ignore[index]
    assert Counter(buckets).most_common(1)[0][1] == 1, buckets
    assert all(b.timestamp() % every_s == 0 for b in buckets), buckets
    assert len({job["id"] for job in jobs}) == len(jobs)
    return buckets


def fired(procs: list[Proc], name: str, duplicate: bool) -> int:
    return sum(1 for p in procs for e in events(p, "schedule.fired")
               if e["name"] == name and e["duplicate"] is duplicate)


# --- JobSchedules ---


async def test_every_bucket_gets_exactly_one_job_across_restart_and_peers(
    control_plane: ControlPlane, install: Install, start_operator: Callable[..., Proc],
    redis: Redis, settings: Settings,
) -> None:
    plane, ns, name = control_plane, install.namespace, "every-2s"
    apply(plane, ns, schedule(name, every="2s"))
    first = start_operator(priority=10, name="op-a")
    start = await started(first)

    async def jobs_at_least(n: int) -> list[dict[str, str]] | None:
        found = await schedule_jobs(redis, settings, name)
        return found if len(found) >= n else None

    await eventually(lambda: jobs_at_least(2), timeout=30, what="two firings")

    # Status, Ready condition and a `Fired` Event, written under the chart's RBAC.
    obj = kube_json(plane, "get", "jobschedule", name, "--namespace", ns)
    status = obj["status"]
    assert {"lastScheduleTime", "lastBucket", "lastJobId", "nextScheduleTime",
            "observedGeneration"} <= status.keys()
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert (ready(obj) or {}).get("status") == "True" and ready(obj)["reason"] == "Scheduled"
    assert datetime.fromisoformat(status["nextScheduleTime"]) > datetime.fromisoformat(
        status["lastBucket"])
    assert not obj["metadata"].get("finalizers")  # deletion never waits for an operator
    fired_events = await eventually(
        lambda: _async(k8s_events(plane, ns, name, "Fired")), timeout=30, what="a Fired Event")
    assert fired_events[0]["type"] == "Normal"
    assert "enqueued job" in fired_events[0]["message"]
    samples = scrape(int(start["metricsPort"]))
    created = f'jobq_operator_schedule_firings_total{{name="{name}",namespace="{ns}",result="created"}}'
    assert samples[created] >= 2 and samples["jobq_operator_leader"] == 1.0

    # kill -9 mid-bucket, start again (a higher priority than the dead one's stale peering
    # entry, which kopf keeps for its lifetime): the firings go on, nothing doubled.
    first.kill9()
    count = len(await schedule_jobs(redis, settings, name))
    second = start_operator(priority=30, name="op-b")
    await started(second)
    await eventually(lambda: jobs_at_least(count + 2), timeout=30, what="firings after restart")

    # A second operator at once: it waits (lower priority) while the first acts.
    third = start_operator(priority=20, name="op-c")
    await started(third, "operator.paused")
    count = len(await schedule_jobs(redis, settings, name))
    await eventually(lambda: jobs_at_least(count + 2), timeout=30, what="firings with two peers")
    assert not events(third, "operator.active")
    assert fired(procs=[third], name=name, duplicate=False) == 0

    # The acting one leaves (SIGTERM: kopf removes it from the peering): the other takes over.
    second.terminate()
    second.wait(timeout=30)
    await started(third)
    count = len(await schedule_jobs(redis, settings, name))
    await eventually(lambda: jobs_at_least(count + 2), timeout=30, what="firings after takeover")
    third.terminate()
    third.wait(timeout=30)

    jobs = await schedule_jobs(redis, settings, name)
    buckets = assert_one_job_per_bucket(jobs, every_s=2)
    assert len(buckets) >= 8
    everyone = [first, second, third]
    # Every job was created by one firing; any other firing of its bucket found it (duplicate).
    # (kill -9 may land between a job's creation and its log line: hence the one of slack.)
    assert len(jobs) - 1 <= fired(everyone, name, duplicate=False) <= len(jobs)
    plane.kubectl("delete", "jobschedule", name, "--namespace", ns, "--timeout=30s")


async def _async(value: Any) -> Any:
    return value


async def test_invalid_time_zone_is_reported_then_fixed(
    control_plane: ControlPlane, install: Install, start_operator: Callable[..., Proc],
    redis: Redis, settings: Settings,
) -> None:
    plane, ns, name = control_plane, install.namespace, "bad-zone"
    # Yearly, so that no job fires while the test runs: only the reports matter here.
    apply(plane, ns, schedule(name, schedule="0 0 1 1 *", timeZone="Mars/Olympus_Mons"))
    start_operator()

    async def condition(reason: str) -> dict[str, Any] | None:
        obj = kube_json(plane, "get", "jobschedule", name, "--namespace", ns)
        found = ready(obj)
        return found if found and found["reason"] == reason else None

    bad = await eventually(lambda: condition("UnknownTimeZone"), timeout=60,
                           what="Ready=False UnknownTimeZone")
    assert bad["status"] == "False" and "Mars/Olympus_Mons" in bad["message"]
    warnings = await eventually(
        lambda: _async(k8s_events(plane, ns, name, "UnknownTimeZone")), timeout=30,
        what="a Warning Event")
    assert warnings[0]["type"] == "Warning"
    obj = kube_json(plane, "get", "jobschedule", name, "--namespace", ns)
    assert "nextScheduleTime" not in obj["status"]

    # Fixing the spec (a new generation) wakes the schedule at once.
    plane.kubectl("patch", "jobschedule", name, "--namespace", ns, "--type=merge",
                  "-p", json.dumps({"spec": {"timeZone": "Europe/Berlin"}}))
    good = await eventually(lambda: condition("Scheduled"), timeout=30, what="Ready=True")
    assert good["status"] == "True"
    # And suspending it keeps it Ready, with the reason saying why nothing fires.
    plane.kubectl("patch", "jobschedule", name, "--namespace", ns, "--type=merge",
                  "-p", json.dumps({"spec": {"suspend": True}}))
    suspended = await eventually(lambda: condition("Suspended"), timeout=30, what="Suspended")
    assert suspended["status"] == "True"
    assert await schedule_jobs(redis, settings, name) == []


async def test_deleting_a_schedule_never_hangs(
    control_plane: ControlPlane, install: Install, start_operator: Callable[..., Proc],
) -> None:
    plane, ns = control_plane, install.namespace
    for name in ("gone-live", "gone-dead"):
        apply(plane, ns, schedule(name, every="1h"))
    operator = start_operator(priority=100)  # killed below; above the first test's (10)

    async def reconciled(name: str) -> bool:
        obj = kube_json(plane, "get", "jobschedule", name, "--namespace", ns)
        return obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]

    for name in ("gone-live", "gone-dead"):
        await eventually(lambda name=name: reconciled(name), timeout=60, what=f"{name} seen")

    # With the operator running...
    plane.kubectl("delete", "jobschedule", "gone-live", "--namespace", ns, "--timeout=20s")
    await eventually(lambda: _async(events(operator, "schedule.forgotten")), timeout=30,
                     what="the operator to drop the deleted schedule")
    # ...and with no operator at all (killed without any chance to clean up).
    operator.kill9()
    plane.kubectl("delete", "jobschedule", "gone-dead", "--namespace", ns, "--timeout=20s")
    left = plane.kubectl("get", "jobschedules", "--namespace", ns, "-o", "name").stdout.split()
    assert not {"jobschedule.jobq.io/gone-live", "jobschedule.jobq.io/gone-dead"} & set(left)


# --- autoscaling ---


def worker_deployment(name: str, *, min_replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "jobq-test-worker", "jobq.io/queue": QUEUE}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "annotations": {
                "jobq.io/queue": QUEUE, "jobq.io/min-replicas": str(min_replicas),
                "jobq.io/max-replicas": "4", "jobq.io/jobs-per-replica": "5",
                "jobq.io/scale-down-delay": "3",
            },
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                # Never pulled: kwok only pretends to run it; the real worker runs locally.
                "spec": {"containers": [{"name": "worker", "image": "example.invalid/jobq:1"}]},
            },
        },
    }


async def test_worker_deployment_follows_the_backlog(
    control_plane: ControlPlane, install: Install, start_operator: Callable[..., Proc],
    start_worker: Callable[..., Proc], client: Client, redis: Redis, settings: Settings,
) -> None:
    plane, ns, name = control_plane, install.namespace, "workers"
    apply(plane, ns, worker_deployment(name, min_replicas=1))
    # The whole backlog is there before the operator looks, so its first look sees all of it.
    for i in range(20):
        await client.enqueue("noop", f"scale-{i}", {"n": i})
    operator = start_operator()
    port = int((await started(operator))["metricsPort"])

    def replicas() -> int:
        scale = kube_json(plane, "get", "deployment", name, "--namespace", ns)
        return int(scale["spec"].get("replicas", 1))

    async def replicas_become(n: int) -> bool:
        return replicas() == n

    await eventually(lambda: replicas_become(4), timeout=30, what="scale-up to 4")
    scaled = await eventually(lambda: _async(k8s_events(plane, ns, name, "Scaled")), timeout=30,
                              what="a Scaled Event")
    assert "from 1 to 4 replicas: backlog 20" in scaled[0]["message"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as health:
        assert health.status == 200
    samples = scrape(port)
    assert samples[f'jobq_operator_desired_replicas{{queue="{QUEUE}"}}'] == 4
    assert samples[f'jobq_operator_current_replicas{{queue="{QUEUE}"}}'] == 4

    # Drain the queue with a real worker: after the 3 s delay (and not before), back to 1.
    worker = start_worker(f"{QUEUE}:4")
    q = QueueKeys(settings.key_prefix, QUEUE)

    async def drained() -> bool:
        return await redis.llen(q.wait) == 0 and await redis.zcard(q.active) == 0

    await eventually(drained, timeout=30, what="the worker to drain the queue")
    await eventually(lambda: replicas_become(1), timeout=30, what="scale-down to 1")
    deployment = kube_json(plane, "get", "deployment", name, "--namespace", ns)
    assert "jobq.io/scale-down-since" not in deployment["metadata"]["annotations"]
    async def scale_downs() -> list[dict[str, Any]]:
        # Log lines are written in batches (at least every 100 ms): await the line.
        return [e for e in events(operator, "autoscale.scaled")
                if e["toReplicas"] < e["fromReplicas"]]

    downs = await eventually(scale_downs, timeout=5, what="the scale-down's log event")
    assert all(e["lowerForS"] >= 3 for e in downs)  # each after the whole delay
    if plane.node_name:  # pods exist: each got its deletion cost before the scale-down
        pods = kube_json(plane, "get", "pods", "--namespace", ns, "-l",
                         "app.kubernetes.io/name=jobq-test-worker")["items"]
        costed = [p for p in pods if "controller.kubernetes.io/pod-deletion-cost"
                  in (p["metadata"].get("annotations") or {})]
        assert costed, [p["metadata"]["name"] for p in pods]

    # min 0: down to zero once idle; then one new job wakes it (no worker is left to take it).
    worker.terminate()
    worker.wait(timeout=30)
    plane.kubectl("annotate", "deployment", name, "--namespace", ns, "--overwrite",
                  "jobq.io/min-replicas=0")
    await eventually(lambda: replicas_become(0), timeout=30, what="scale to zero")
    await client.enqueue("noop", "wake-up", {"n": 0})
    await eventually(lambda: replicas_become(1), timeout=15, what="wake from zero")

    # Without the queue annotation it is no longer autoscaled: kopf drops it from its index, the
    # loop reads that (not the API) and ends, and its queue's gauges go.
    plane.kubectl("annotate", "deployment", name, "--namespace", ns, "jobq.io/queue-")

    async def forgotten() -> bool:
        return any(e.get("deployment") == name for e in events(operator, "autoscale.forgotten"))

    await eventually(forgotten, timeout=15, what="the loop to drop the unannotated Deployment")
    assert f'jobq_operator_current_replicas{{queue="{QUEUE}"}}' not in scrape(port)

    # Deleting the Deployment is never held up either.
    plane.kubectl("delete", "deployment", name, "--namespace", ns, "--timeout=30s")


def api_reads(plane: ControlPlane, resource: str) -> float:
    """GET requests for single ``resource`` objects the API server has answered so far."""
    total = 0.0
    for line in plane.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        found = REQUESTS.match(line)
        if found is None:
            continue
        labels = found["labels"]
        if 'verb="GET"' in labels and f'resource="{resource}"' in labels \
                and 'subresource=""' in labels:
            total += float(found["count"])
    return total


async def test_what_kopf_streams_is_not_polled(
    control_plane: ControlPlane, install: Install, start_operator: Callable[..., Proc],
) -> None:
    """The autoscaled Deployment comes from kopf's index and the KopfPeering from kopf's
    watch: while the operator acts and nothing changes, it reads neither from the API (it used
    to GET the Deployment every 2 s and the KopfPeering every 1 s)."""
    plane, ns, name = control_plane, install.namespace, "watched"
    apply(plane, ns, worker_deployment(name, min_replicas=1))
    operator = start_operator()
    port = int((await started(operator))["metricsPort"])

    async def evaluated() -> bool:
        return f'jobq_operator_current_replicas{{queue="{QUEUE}"}}' in scrape(port)

    await eventually(evaluated, timeout=30, what="the Deployment's first evaluation")
    deployments, peerings = api_reads(plane, "deployments"), api_reads(plane, "kopfpeerings")
    # A measuring window, not a wait for a condition: five evaluations (INTERVAL_S = 2 s) and
    # ten of the old peering polls would fall in it.
    await asyncio.sleep(10)
    assert api_reads(plane, "kopfpeerings") - peerings == 0
    # At most the one re-read a loop makes after a peering pause (none is expected here).
    assert api_reads(plane, "deployments") - deployments <= 1
    assert events(operator, "operator.active") and not events(operator, "autoscale.error")
    plane.kubectl("delete", "deployment", name, "--namespace", ns, "--timeout=30s")


# --- JobSchedules that fire workflows (R24) ---

def workflow_schedule(name: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobq.io/v1", "kind": "JobSchedule", "metadata": {"name": name},
            "spec": {"workflow": {"nodes": nodes}, **spec}}


async def test_a_workflow_schedule_is_checked_then_fires_one_workflow_per_bucket(
    control_plane: ControlPlane, install: Install, start_operator: Callable[..., Proc],
    redis: Redis, settings: Settings,
) -> None:
    plane, ns, name = control_plane, install.namespace, "wf-every-2s"
    # Both a type and a workflow: the API server refuses it (the CRD's CEL rule).
    both = workflow_schedule(name, [{"key": "a", "type": "noop", "payload": {"n": 1}}],
                             every="2s", type="noop")
    refused = plane.kubectl("apply", "--namespace", ns, "-f", "-", input=json.dumps(both),
                            check=False)
    assert refused.returncode != 0 and "exactly one of spec.type or spec.workflow" in (
        refused.stderr + refused.stdout)
    # A cycle: accepted by the API server, reported Ready=False by the operator, nothing fires.
    cyclic = [{"key": "a", "type": "noop", "payload": {"n": 1}, "deps": [{"node": "b"}]},
              {"key": "b", "type": "noop", "payload": {"n": 1}, "deps": [{"node": "a"}]}]
    apply(plane, ns, workflow_schedule(name, cyclic, every="2s"))
    start_operator(priority=200)

    async def condition(reason: str) -> dict[str, Any] | None:
        found = ready(kube_json(plane, "get", "jobschedule", name, "--namespace", ns))
        return found if found and found["reason"] == reason else None

    bad = await eventually(lambda: condition("InvalidWorkflow"), timeout=60,
                           what="Ready=False InvalidWorkflow")
    assert bad["status"] == "False" and "cycle through a, b" in bad["message"]
    # Fixed: a chain of two; each bucket creates one workflow keyed by schedule and bucket.
    chain = [{"key": "a", "type": "noop", "payload": {"n": 1}},
             {"key": "b", "type": "noop", "payload": {"n": 2}, "deps": [{"node": "a"}]}]
    plane.kubectl("patch", "jobschedule", name, "--namespace", ns, "--type=merge", "-p",
                  json.dumps({"spec": {"workflow": {"nodes": chain}}}))
    await eventually(lambda: condition("Scheduled"), timeout=30, what="Ready=True")

    async def fired_buckets() -> list[str] | None:
        obj = kube_json(plane, "get", "jobschedule", name, "--namespace", ns)
        last = obj.get("status", {}).get("lastWorkflowId")
        return [obj["status"]["lastBucket"], last] if last else None

    bucket, wf_id = await eventually(fired_buckets, timeout=30, what="a workflow firing")
    key = f"schedule:{ns}/{name}:{bucket}"
    assert wf_id == workflow_id_for(key)
    client = Client(redis, load_registry(settings.tasks), settings)
    view = await client.get_workflow(wf_id)
    assert view.idempotency_key == key
    assert {n.key: n.state for n in view.nodes} == {"a": "released", "b": "waiting"}
    fired_events = await eventually(
        lambda: _async(k8s_events(plane, ns, name, "Fired")), timeout=30, what="a Fired Event")
    assert "created workflow" in fired_events[0]["message"]
    plane.kubectl("delete", "jobschedule", name, "--namespace", ns, "--timeout=30s")
