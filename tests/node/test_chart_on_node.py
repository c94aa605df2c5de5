"""The chart on real pods, installed the way a release is met: `helm install --wait` of
oci://<registry>/charts/jobq by version from the tier's OCI registry, the image pulled by the node
from that registry by tag and digest, into a namespace enforcing the restricted Pod Security
Standard; every pod Ready through its own probes, Valkey's PVC bound to a local PersistentVolume;
`helm test` (a job through the API Service by DNS name); then the Ingress, served by a real
Traefik, carrying a job there and its status back, and the job's trace from the request through
the API pod and a worker pod in a real Jaeger on the host; `helm upgrade` to the next version
pushed to the registry, under load."""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster.controlplane import ControlPlane
from cluster.processes import ComponentFailed, Processes, free_ports, wait_until
from jaeger_kit import Jaeger, running_jaeger

from .conftest import NodeCluster
from .host import NODE_IP, NODE_ROOT
from .monitoring import SCRAPE_INTERVAL, Prometheus, running_prometheus
from .pulls import check_pulls, helm_watching_pulls

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobq"  # its dashboard is read here; the chart installs from the registry
RELEASE = "jq"
FULLNAME = f"{RELEASE}-jobq"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
LOCAL_CLASS = "jobq-local"
INGRESS_HOST = "jobq.node.test"
INSTALL_TIMEOUT = "600s"
# Setup and teardown of the module's release count against the first and last test's timeout.
pytestmark = pytest.mark.timeout(1500)


@dataclass(frozen=True)
class Release:
    namespace: str
    token: str
    values: Path


def _values(cluster: NodeCluster, token: str, path: Path, otlp_url: str) -> Path:
    """The release's values: the image from the test registry, its tag the chart's appVersion
    (the image's digest is set per install or upgrade, for the version it installs); spans
    exported to ``otlp_url``, every attempt a child of the request that created its job."""
    valkey_repository, _, valkey_tag = cluster.images.valkey.rpartition(":")
    values: dict[str, Any] = {
        "image": {"repository": cluster.images.registry.repository, "pullPolicy": "IfNotPresent"},
        "redis": {
            "image": {"repository": valkey_repository, "tag": valkey_tag, "pullPolicy": "Never"},
            "persistence": {"storageClass": LOCAL_CLASS, "size": "1Gi"},
        },
        "api": {"replicas": 1, "auth": {"tokens": [token]}},
        "operator": {"replicas": 1},
        # report-queue scales from zero and back quickly; its 1 s shutdown grace is shorter than
        # the test's jobs, so a pod removed with jobs running hands them back.
        "queues": [
            {"name": "email-queue", "concurrency": 3, "minReplicas": 1, "maxReplicas": 2,
             "jobsPerReplica": 50, "scaleDownDelaySeconds": 300},
            {"name": "report-queue", "concurrency": 2, "minReplicas": 0, "maxReplicas": 3,
             "jobsPerReplica": 20, "scaleDownDelaySeconds": 10, "shutdownGraceSeconds": 1,
             "terminationGracePeriodSeconds": 15},
        ],
        "ingress": {
            "enabled": True,
            "className": "traefik",
            "hosts": [{"host": INGRESS_HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}],
        },
        "tracing": {"endpoint": otlp_url, "propagation": "child"},
        # Spans leave a pod within half a second (the SDK's default is every 5 s).
        "config": {"extraEnv": [{"name": "OTEL_BSP_SCHEDULE_DELAY", "value": "500"}]},
    }
    path.write_text(json.dumps(values))
    return path


def _local_volume(namespace: str, node_name: str) -> str:
    """A StorageClass without provisioner and one local PersistentVolume on the node for Valkey."""
    directory = NODE_ROOT / "volumes" / namespace
    directory.mkdir(parents=True, exist_ok=True)
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": LOCAL_CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"valkey-{namespace}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": LOCAL_CLASS,
            "local": {"path": str(directory)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}},
        },
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [storage_class, volume]})


@pytest.fixture(scope="module")
def jaeger(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """A real Jaeger on the host: its OTLP receiver on the node's bridge address, which pods
    reach as they reach the API server; its query API on loopback for the test."""
    with running_jaeger(tmp_path_factory.mktemp("jaeger"), otlp_host=NODE_IP) as found:
        yield found


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster, jaeger: Jaeger,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    cluster, plane = node_cluster, node_cluster.plane
    namespace = f"jobq-{uuid.uuid4().hex[:6]}"
    token = secrets.token_urlsafe(24)
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("label", "namespace", namespace, RESTRICTED)
    plane.kubectl("apply", "-f", "-", input=_local_volume(namespace, cluster.node.name))
    values = _values(cluster, token, tmp_path_factory.mktemp("values") / "values.json",
                     jaeger.otlp_url)
    published = cluster.images.registry
    version = published.versions[0]
    cluster.phase(f"helm install --wait {RELEASE} {published.chart} --version {version} "
                  f"into {namespace} (restricted)")
    try:
        code, output = helm_watching_pulls(
            plane, namespace, "install", RELEASE, published.chart, "--version", version,
            "--plain-http", "--namespace", namespace, "-f", values,
            "--set", f"image.digest={published.digests[version]}",
            "--wait", "--timeout", INSTALL_TIMEOUT, timeout_s=700)
    except AssertionError as exc:
        pytest.fail(f"helm install from the registry: {exc}", pytrace=False)
    if code != 0:
        pytest.fail(f"helm install --wait failed:\n{output}\n{_diagnose(plane, namespace)}",
                    pytrace=False)
    yield Release(namespace, token, values)
    cluster.phase(f"helm uninstall {RELEASE}")
    plane.helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "180s",
               check=False, timeout_s=240)
    plane.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False,
                  timeout_s=150)
    plane.kubectl("delete", "pv", f"valkey-{namespace}", "--wait=false", check=False)


def _diagnose(plane: ControlPlane, namespace: str) -> str:
    parts = [plane.kubectl("get", "pods,pvc,pv,events", "-n", namespace, "-o", "wide",
                           check=False).stdout]
    pods = plane.kubectl("get", "pods", "-n", namespace, "-o", "name", check=False).stdout.split()
    for pod in pods:
        logs = plane.kubectl("logs", pod, "-n", namespace, "--all-containers", "--tail=20",
                             check=False)
        parts.append(f"--- {pod}\n{logs.stdout}{logs.stderr}")
    return "\n".join(parts)


def _pods(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        plane.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    return items


def _pod(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    """The pod's object, or {} while it does not exist."""
    result = plane.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    found: dict[str, Any] = json.loads(result.stdout) if result.returncode == 0 else {}
    return found


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _deployed(plane: ControlPlane, namespace: str) -> tuple[str, str]:
    """(chart, app version) of the release as helm recorded it, e.g. ("jobq-0.1.0", "0.1.0")."""
    listed = json.loads(plane.helm("list", "--namespace", namespace, "-o", "json").stdout)
    return next((r["chart"], r["app_version"]) for r in listed if r["name"] == RELEASE)


def _jobq_images(plane: ControlPlane, namespace: str) -> set[str]:
    """The images of the running API, worker and operator pods, as their specs name them."""
    return {c["image"] for p in _pods(plane, namespace) if p["status"].get("phase") == "Running"
            and "deletionTimestamp" not in p["metadata"]
            and p["metadata"]["labels"].get("app.kubernetes.io/component") in {"api", "worker", "operator"}
            for c in p["spec"]["containers"]}


def test_helm_install_wait_makes_every_pod_ready_and_helm_test_passes(
    node_cluster: NodeCluster, release: Release
) -> None:
    plane = node_cluster.plane
    pods = [p for p in _pods(plane, release.namespace) if p["status"].get("phase") == "Running"]
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"api", "worker", "operator", "redis"} <= components, components
    # Installed from the registry: the chart by version, the image by tag and digest.
    published = node_cluster.images.registry
    version = published.versions[0]
    assert _deployed(plane, release.namespace) == (f"jobq-{version}", version)
    assert _jobq_images(plane, release.namespace) == {published.image(version)}
    not_ready = [p["metadata"]["name"] for p in pods if not _ready(p)]
    assert not not_ready, f"not Ready: {not_ready}\n{_diagnose(plane, release.namespace)}"
    # Every container really runs on the node (containerd knows it), not just in the API.
    assert all(p["spec"]["nodeName"] == node_cluster.node.name for p in pods)
    pvc = json.loads(plane.kubectl("get", "pvc", "-n", release.namespace, "-o", "json").stdout)
    assert [(c["status"]["phase"], c["spec"]["volumeName"]) for c in pvc["items"]] == [
        ("Bound", f"valkey-{release.namespace}")]

    node_cluster.phase("helm test")
    result = plane.helm("test", RELEASE, "--namespace", release.namespace, "--logs",
                        "--timeout", "300s", check=False, timeout_s=360)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "state: completed" in result.stdout


# --- Ingress ---


@dataclass(frozen=True)
class Ingress:
    url: str  # http://127.0.0.1:<port>, the Host header selects the chart's Ingress
    token: str

    def call(self, method: str, path: str, body: object | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Host": INGRESS_HOST, "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the connection open until closed
                return exc.code, exc.read()[:500]

    def answers(self) -> bool:
        try:
            return self.call("GET", "/readyz")[0] == 200
        except OSError:
            return False


@pytest.fixture(scope="module")
def ingress(node_cluster: NodeCluster, release: Release, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Ingress]:
    """Traefik (built from its Go module) as the node's ingress controller, on a loopback port;
    it watches Ingresses of IngressClass `traefik` and proxies to the Service's pod endpoints."""
    plane = node_cluster.plane
    plane.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}))
    web, ping = free_ports(2)
    token = json.loads(plane.kubeconfig.read_text())["users"][0]["user"]["token"]
    processes = Processes(tmp_path_factory.mktemp("traefik"))
    node_cluster.phase("starting Traefik")
    traefik = processes.start("traefik", [
        node_cluster.node_bin / "traefik",
        f"--entryPoints.web.address=127.0.0.1:{web}",
        f"--entryPoints.ping.address=127.0.0.1:{ping}",
        "--ping=true", "--ping.entryPoint=ping",
        "--providers.kubernetesIngress=true",
        f"--providers.kubernetesIngress.endpoint={plane.server}",
        f"--providers.kubernetesIngress.token={token}",
        f"--providers.kubernetesIngress.certAuthFilePath={plane.ca_cert}",
        "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
    ])
    try:
        found = Ingress(f"http://127.0.0.1:{web}", release.token)
        wait_until(found.answers, what="Traefik to route the chart's Ingress to the API",
                   timeout_s=120, alive=[traefik])
        yield found
    finally:
        processes.stop_all()
        plane.kubectl("delete", "ingressclass", "traefik", check=False)


def test_a_job_through_the_ingress(ingress: Ingress) -> None:
    """The seed's example job POSTed to the Ingress host; its status read back through it."""
    job = {"type": "welcome-email", "idempotencyKey": f"ingress-{uuid.uuid4().hex}",
           "payload": {"email": "ingress@example.com", "name": "through the Ingress"}}
    status, body = ingress.call("POST", "/jobs", job)
    assert status == 202, body
    assert body["status"] == "accepted"
    job_id = body["jobId"]
    wait_until(lambda: ingress.call("GET", f"/jobs/{job_id}/status")[1].get("state") == "completed",
               what=f"job {job_id} completed (read through the Ingress)", timeout_s=120)
    status, body = ingress.call("GET", f"/jobs/{job_id}/status")
    assert (status, body["jobId"], body["attempts"]) == (200, job_id, 1)
    # Without the token the Ingress passes the API's own 401 through.
    request = urllib.request.Request(ingress.url + f"/jobs/{job_id}/status",
                                     headers={"Host": INGRESS_HOST})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value:
        assert refused.value.code == 401


def test_one_trace_from_the_request_through_the_api_pod_and_a_worker_pod(
    ingress: Ingress, jaeger: Jaeger, release: Release
) -> None:
    """A request through the Ingress carrying a W3C traceparent: the API pod's producer span is
    its child, the worker pod's attempt (``process``) a child of that, all in the request's
    trace in Jaeger, each from the service its pod is named for and the release's namespace."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    job = {"type": "welcome-email", "idempotencyKey": f"traced-{uuid.uuid4().hex}",
           "payload": {"email": "traced@example.com", "name": "traced"}}
    status, body = ingress.call("POST", "/jobs", job,
                                headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert status == 202, body
    job_id = body["jobId"]
    found: list[dict[str, Any]] = []

    def both_services() -> bool:
        found[:] = jaeger.trace(trace_id) or []
        return any(s["service"] == "jobq-worker" and s["name"].startswith("process")
                   for s in found) and any(s["service"] == "jobq-api" for s in found)

    wait_until(both_services, what=f"trace {trace_id} with the API's and a worker's spans",
               timeout_s=120)
    api = [s for s in found if s["service"] == "jobq-api"]
    sent = [s for s in api if s["parentSpanId"] == parent]
    assert sent, f"no API span is the request's child: {api}"
    [attempt] = [s for s in found if s["service"] == "jobq-worker"]
    assert attempt["parentSpanId"] in {s["spanId"] for s in api}, found
    assert attempt["attributes"]["messaging.message.id"] == job_id
    assert attempt["attributes"]["jobq.outcome"] == "completed"
    assert {s["resource"].get("k8s.namespace.name") for s in found} == {release.namespace}


# --- autoscaling real workers ---


def _replicas(plane: ControlPlane, namespace: str, queue: str) -> tuple[int, int]:
    """(spec.replicas, running worker pods) of that queue's Deployment."""
    name = f"{FULLNAME}-worker-{queue}"
    spec = plane.kubectl("get", "deployment", name, "-n", namespace, "-o",
                         "jsonpath={.spec.replicas}").stdout.strip()
    pods = [p for p in _pods(plane, namespace)
            if p["metadata"]["labels"].get("jobq.io/queue") == queue
            and p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]]
    return int(spec or 0), len(pods)


def _submit(ingress: Ingress, jobs: list[dict[str, Any]]) -> list[str]:
    ids = []
    for job in jobs:
        status, body = ingress.call("POST", "/jobs", job)
        assert status == 202, body
        ids.append(body["jobId"])
    return ids


def _unfinished(ingress: Ingress, ids: list[str]) -> list[str]:
    """The ids not read back as completed. A read that fails (a request caught by a rollout or a
    Redis restart) leaves its job in the list, to be read again: it says nothing about the job."""
    left = []
    for job_id in ids:
        try:
            status, body = ingress.call("GET", f"/jobs/{job_id}/status")
        except OSError:
            status, body = 0, {}
        if status != 200 or body.get("state") != "completed":
            left.append(job_id)
    return left


def _await_completed(ingress: Ingress, ids: list[str], *, what: str, timeout_s: float) -> None:
    pending = list(ids)

    def done() -> bool:
        pending[:] = _unfinished(ingress, pending)
        return not pending

    try:
        wait_until(done, what=what, timeout_s=timeout_s)
    except ComponentFailed as exc:
        states = Counter(str(ingress.call("GET", f"/jobs/{job_id}/status")[1]) for job_id in pending[:20])
        raise AssertionError(f"{exc}\n{len(pending)} of {len(ids)} not completed; "
                             f"first ones: {dict(states)}") from None


def _attempts(ingress: Ingress, job_id: str) -> tuple[int, list[str | None]]:
    status, body = ingress.call("GET", f"/jobs/{job_id}")
    assert status == 200, body
    outcomes = [h["outcome"] for h in body["history"]]
    assert all((h["outcome"] == "handed-back") == h["handedBack"] for h in body["history"]), body
    return body["attempts"], outcomes


def _running_on(ingress: Ingress, job_id: str) -> str | None:
    """The pod running that job now, or None while it is not running: its current attempt's
    worker id, looked up in the workers' heartbeats (each names its pod)."""
    status, body = ingress.call("GET", f"/jobs/{job_id}")
    if status != 200 or body["state"] != "active" or not body["history"]:
        return None
    worker = body["history"][-1]["worker"]
    status, listed = ingress.call("GET", "/workers")
    pods = [w["pod"] for w in listed["workers"] if w["workerId"] == worker] if status == 200 else []
    return pods[0] if pods else None


@pytest.mark.timeout(1200)
def test_workers_scale_from_zero_drain_and_go_back_without_losing_or_repeating_a_job(
    node_cluster: NodeCluster, release: Release, ingress: Ingress
) -> None:
    plane, ns = node_cluster.plane, release.namespace
    wait_until(lambda: _replicas(plane, ns, "report-queue") == (0, 0),
               what="report-queue's workers at zero before the load", timeout_s=180)
    run = uuid.uuid4().hex[:8]
    # One long report first (claimed first), then 200 short ones. The long one's pod is deleted
    # while it runs: 20 s is far past the queue's 1 s shutdown grace, so it must be handed back.
    # The short ones (1 s each, 6 slots at most) keep the queue's pods busy for about 35 s.
    long_report = {"type": "generate-report", "idempotencyKey": f"scale-{run}-long",
                   "payload": {"reportId": "r-long", "rows": 10, "sleepSeconds": 20}}
    jobs = [{"type": "generate-report", "idempotencyKey": f"scale-{run}-{i}",
             "payload": {"reportId": f"r-{i}", "rows": 10, "sleepSeconds": 1}} for i in range(200)]
    node_cluster.phase("autoscaling: 201 jobs on report-queue, its workers at zero")
    ids = _submit(ingress, [long_report, *jobs])
    peak = [0]

    def scaled_up() -> bool:
        _, running = _replicas(plane, ns, "report-queue")
        peak[0] = max(peak[0], running)
        return running >= 2

    wait_until(scaled_up, what="the operator to scale report-queue up from zero", timeout_s=180)
    busy: list[str] = []

    def long_report_running() -> bool:
        pod = _running_on(ingress, ids[0])
        busy[:] = [pod] if pod else []
        return bool(busy)

    wait_until(long_report_running, what="the long report running on a worker pod", timeout_s=120)
    node_cluster.phase(f"autoscaling: deleting worker pod {busy[0]} while it runs the long report")
    plane.kubectl("delete", "pod", busy[0], "-n", ns, "--wait=false")
    _await_completed(ingress, ids, what="all 201 jobs completed", timeout_s=900)
    wait_until(lambda: _replicas(plane, ns, "report-queue") == (0, 0),
               what="report-queue back to zero after the scale-down delay", timeout_s=300)
    # Each job ran to completion once: one attempt, completed. A pod removed with jobs running
    # (the deleted one; any removed on scale-down) hands them back: the history shows each
    # hand-back, and it spent no attempt.
    repeated, handed_back = {}, 0
    for job_id in ids:
        attempts, outcomes = _attempts(ingress, job_id)
        runs = [outcome for outcome in outcomes if outcome != "handed-back"]
        handed_back += len(outcomes) - len(runs)
        if (attempts, runs) != (1, ["completed"]):
            repeated[job_id] = (attempts, outcomes)
    node_cluster.phase(f"autoscaling: {handed_back} hand-back(s) in the history")
    assert not repeated, f"jobs not completed in exactly one attempt: {repeated}"
    assert peak[0] >= 2
    assert "handed-back" in _attempts(ingress, ids[0])[1], "the deleted pod kept its long report"


# --- upgrade and failure ---


def _load(tag: str, count: int) -> list[dict[str, Any]]:
    return [{"type": "welcome-email", "idempotencyKey": f"{tag}-{i}",
             "payload": {"email": f"u{i}@example.com", "name": f"load {i}"}} for i in range(count)]


def _submit_accepted(ingress: Ingress, jobs: list[dict[str, Any]]) -> list[str]:
    """POST each job (retrying a refused or failed request, same idempotency key); the ids of
    those the API accepted. During a rollout or a Redis restart some requests fail: those jobs
    were never accepted, and the retry either gets them accepted or leaves them out."""
    ids = []
    for job in jobs:
        for _ in range(30):
            try:
                status, body = ingress.call("POST", "/jobs", job)
            except OSError:
                status, body = 0, None
            if status in (200, 202):
                ids.append(body["jobId"])
                break
            time.sleep(0.5)
    return ids


@pytest.mark.timeout(1200)
def test_helm_upgrade_to_the_next_version_from_the_registry_rolls_every_deployment_and_loses_no_accepted_job(
    node_cluster: NodeCluster, release: Release, ingress: Ingress
) -> None:
    plane, ns = node_cluster.plane, release.namespace
    published = node_cluster.images.registry
    old, new = published.versions
    assert published.digests[new] != published.digests[old], "the next version is the same image"
    run = uuid.uuid4().hex[:8]
    before = _submit_accepted(ingress, _load(f"pre-{run}", 30))
    node_cluster.phase(f"helm upgrade to {published.chart} --version {new} under load")
    with tempfile.TemporaryFile("w+") as log, subprocess.Popen(
        [str(plane.bin_dir / "helm"), "upgrade", RELEASE, published.chart, "--version", new,
         "--plain-http", "--namespace", ns, "-f", str(release.values),
         "--set", f"image.digest={published.digests[new]}", "--wait", "--timeout", INSTALL_TIMEOUT],
        env=plane.env(), stdout=log, stderr=subprocess.STDOUT, text=True,
    ) as upgrade:
        during: list[str] = []
        batch = 0
        try:
            # A steady trickle, bounded: completed records beyond JOBQ_COMPLETED_KEEP (1000 per
            # queue) are trimmed, and a trimmed record would read as a lost job.
            while upgrade.poll() is None:
                check_pulls(plane, ns)
                if len(during) < 300:
                    during += _submit_accepted(ingress, _load(f"during-{run}-{batch}", 2))
                    batch += 1
                time.sleep(1)
        finally:
            if upgrade.poll() is None:
                upgrade.kill()
        upgrade.wait()
        log.seek(0)
        output = log.read()
    assert upgrade.returncode == 0, output
    assert _deployed(plane, ns) == (f"jobq-{new}", new)
    images = _jobq_images(plane, ns)
    assert images == {published.image(new)}, images
    after = _submit_accepted(ingress, _load(f"post-{run}", 10))
    assert during, "no job was accepted while the upgrade rolled"
    _await_completed(ingress, before + during + after, what="every accepted job completed",
                     timeout_s=300)


@pytest.mark.timeout(900)
def test_deleting_the_valkey_pod_mid_load_loses_no_accepted_job(
    node_cluster: NodeCluster, release: Release, ingress: Ingress
) -> None:
    plane, ns = node_cluster.plane, release.namespace
    pod = f"{FULLNAME}-redis-0"
    first_uid = _pod(plane, ns, pod)["metadata"]["uid"]
    run = uuid.uuid4().hex[:8]
    # Reports of a few seconds on report-queue (its workers at zero, scaled up by the operator)
    # are still waiting or running when Valkey goes: they must come back from its AOF.
    reports = [{"type": "generate-report", "idempotencyKey": f"valkey-report-{run}-{i}",
                "payload": {"reportId": f"v-{i}", "rows": 10, "sleepSeconds": 2}} for i in range(20)]
    before = _submit_accepted(ingress, reports + _load(f"valkey-pre-{run}", 40))
    node_cluster.phase("deleting the Valkey pod mid-load (AOF on its local volume)")
    plane.kubectl("delete", "pod", pod, "-n", ns, "--wait=false")
    # Jobs refused while Valkey is down were never accepted; those accepted must all complete.
    during = _submit_accepted(ingress, _load(f"valkey-during-{run}", 20))

    def replaced_and_ready() -> bool:
        found = _pod(plane, ns, pod)
        return bool(found) and found["metadata"]["uid"] != first_uid and _ready(found)

    wait_until(replaced_and_ready, what="a new Valkey pod Ready on the same volume", timeout_s=300)
    after = _submit_accepted(ingress, _load(f"valkey-post-{run}", 10))
    assert (len(before), len(after)) == (60, 10), "Valkey up, and the API refused jobs"
    # The workers come back by themselves: nobody restarts them. A job accepted before the
    # restart reads back (the AOF kept it) and every one completes.
    _await_completed(ingress, before + during + after,
                     what="every accepted job completed after the restart", timeout_s=300)


# --- monitoring: the Prometheus Operator scrapes the chart's ServiceMonitors ---

DASHBOARD = CHART / "dashboards" / "jobq.json"
# Counters of events these tests do not cause: no worker is lost here, so that series never appears.
NO_EVENT_HERE = {"jobq_jobs_lost_total": "no job is lost (reclaimed after a worker died) here"}


@pytest.fixture(scope="module")
def prometheus(node_cluster: NodeCluster, release: Release,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus of the operator's, then the chart upgraded with its ServiceMonitors and
    PrometheusRule on, labelled `release: jq` (what the Prometheus selects, as in
    kube-prometheus-stack), scraping every 5 s."""
    plane = node_cluster.plane
    with running_prometheus(node_cluster, tmp_path_factory.mktemp("prometheus"), RELEASE) as found:
        node_cluster.phase("helm upgrade: ServiceMonitors and PrometheusRule on (release label)")
        version = _deployed(plane, release.namespace)[0].removeprefix("jobq-")  # as installed
        plane.helm(
            "upgrade", RELEASE, node_cluster.images.registry.chart, "--version", version,
            "--plain-http", "--namespace", release.namespace, "--reuse-values",
            "--set", "metrics.serviceMonitor.enabled=true",
            "--set", f"metrics.serviceMonitor.labels.release={RELEASE}",
            "--set", f"metrics.serviceMonitor.interval={SCRAPE_INTERVAL}",
            "--set", "metrics.serviceMonitor.scrapeTimeout=4s",
            "--set", f"metrics.prometheusRule.labels.release={RELEASE}",
            "--wait", "--timeout", "300s", timeout_s=360)
        found.await_service_monitors(release.namespace)
        yield found


def _value(prometheus: Prometheus, expr: str) -> float:
    samples = prometheus.query(expr)
    return sum(float(s["value"][1]) for s in samples)


def test_prometheus_scrapes_every_jobq_pod_up(
    node_cluster: NodeCluster, release: Release, prometheus: Prometheus
) -> None:
    plane, ns = node_cluster.plane, release.namespace
    pods: set[str] = set()
    seen: dict[str, str] = {}

    def every_pod_up() -> bool:
        # Listed again each time: report-queue's workers may still be scaling down to zero
        # after the last test's reports, and a pod that has gone is no target to wait for.
        pods.clear()
        pods.update(p["metadata"]["name"] for p in _pods(plane, ns)
                    if p["status"].get("phase") == "Running"
                    and "deletionTimestamp" not in p["metadata"]
                    and p["metadata"]["labels"].get("app.kubernetes.io/component")
                    in {"api", "worker", "operator"})
        seen.clear()
        seen.update({s["metric"].get("pod", "?"): s["value"][1]
                     for s in prometheus.query(f'up{{namespace="{ns}"}}')})
        return pods <= set(seen) and all(seen[pod] == "1" for pod in pods)

    try:
        wait_until(every_pod_up, what="every running API, worker and operator pod an up target",
                   timeout_s=90)
    except ComponentFailed as exc:
        raise AssertionError(f"{exc}\nrunning: {pods}\nup: {seen}\n{prometheus.diagnose()}"
                             ) from None
    jobs = {s["metric"]["job"] for s in prometheus.query(f'up{{namespace="{ns}"}} == 1')}
    assert {f"{FULLNAME}-api", f"{FULLNAME}-worker-email-queue", f"{FULLNAME}-operator"} <= jobs


def test_completed_counter_rises_and_a_dead_letter_raises_the_dlq_alert(
    release: Release, ingress: Ingress, prometheus: Prometheus
) -> None:
    ns = release.namespace
    completed = f'sum(jobq_jobs_completed_total{{namespace="{ns}", queue="email-queue"}})'
    wait_until(lambda: bool(prometheus.query(completed)), what="the completed counter scraped",
               timeout_s=90)
    before = _value(prometheus, completed)
    run = uuid.uuid4().hex[:8]
    ids = _submit(ingress, _load(f"prom-{run}", 3))
    _await_completed(ingress, ids, what="3 jobs completed", timeout_s=120)
    wait_until(lambda: _value(prometheus, completed) >= before + 3,
               what=f"jobq_jobs_completed_total up by 3 from {before}", timeout_s=60)

    # A job that fails every attempt enters the DLQ; a report beside it completes (the failure
    # ratio's queue then has both series).
    status, body = ingress.call("POST", "/jobs", {
        "type": "flaky", "idempotencyKey": f"prom-dlq-{run}",
        "payload": {"failTimes": 5, "sleepSeconds": 0}})
    assert status == 202, body
    _submit(ingress, [{"type": "generate-report", "idempotencyKey": f"prom-report-{run}",
                       "payload": {"reportId": "p", "rows": 1}}])
    alert = 'ALERTS{alertname="JobqDeadLetterGrowing", queue="report-queue", type="flaky"}'
    wait_until(lambda: bool(prometheus.query(alert)), timeout_s=240,
               what="JobqDeadLetterGrowing pending or firing after a job dead-lettered")
    assert {s["metric"]["alertstate"] for s in prometheus.query(alert)} <= {"pending", "firing"}


def _dashboard_queries(namespace: str) -> list[tuple[str, str]]:
    """(panel title, expression) of every target, Grafana's variables filled in as it would."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$namespace", namespace).replace("$queue", ".*")
                    .replace("$__rate_interval", "1m"))
            found.append((panel["title"], expr))
    return found


def test_every_dashboard_query_returns_data(
    release: Release, ingress: Ingress, prometheus: Prometheus
) -> None:
    """Runs after the jobs above (completed, failed, dead-lettered): each panel has data."""
    # The failure panels read report-queue's workers, which scale to zero 10 s after the queue
    # empties, taking their series with them: keep one worker up for the whole wait, with a
    # failed and a completed attempt of its own (a job failing once, then succeeding).
    run = uuid.uuid4().hex[:8]
    _submit(ingress, [
        {"type": "flaky", "idempotencyKey": f"dash-hold-{run}",
         "payload": {"failTimes": 0, "sleepSeconds": 150}},
        {"type": "flaky", "idempotencyKey": f"dash-once-{run}",
         "payload": {"failTimes": 1, "sleepSeconds": 0}},
    ])
    queries = [(title, expr) for title, expr in _dashboard_queries(release.namespace)
               if not any(metric in expr for metric in NO_EVENT_HERE)]
    assert len(queries) >= 20
    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = [f"{title}: {expr}" for title, expr in queries if not prometheus.query(expr)]
        return not empty

    try:
        wait_until(all_answer, what="every dashboard query to return data", timeout_s=120)
    except ComponentFailed:
        raise AssertionError("dashboard queries without data:\n" + "\n".join(empty)) from None
