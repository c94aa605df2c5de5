"""The Prometheus Operator on the real node: its CRDs, the operator itself (built from its Go module
by hack/node-tools.sh, run on this host against the control plane, as Traefik is), and a
Prometheus resource whose pods (Prometheus and the operator's config reloader, built from their
Go modules, imported into the node's containerd) select the chart's ServiceMonitors and PrometheusRule by the
release label, as kube-prometheus-stack's Prometheus selects on its release name."""

from __future__ import annotations

import base64
import gzip
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.controlplane import ControlPlane
from cluster.processes import Process, Processes, free_ports, wait_until

from .conftest import NodeCluster

NAMESPACE = "monitoring"
NAME = "jobq"  # the Prometheus resource; its pod is prometheus-jobq-0
NUDGE_S = 30  # how long Prometheus may go without the ServiceMonitors' jobs before a nudge
VERSIONS = Path(__file__).resolve().parents[2] / "hack" / "node-versions.env"


def _pinned(key: str) -> str:
    return next(line.split("=", 1)[1] for line in VERSIONS.read_text().splitlines()
                if line.startswith(f"{key}="))


# The version the operator generates Prometheus's flags and configuration for: the one built.
PROMETHEUS_VERSION = f"v{_pinned('PROMETHEUS_RELEASE')}"
SCRAPE_INTERVAL = "5s"


@dataclass(frozen=True)
class Prometheus:
    """Prometheus's HTTP API at its pod's address (the node's pods are reachable from this host)."""

    url: str
    plane: ControlPlane
    operator: Process

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant vector query: its samples (metric labels, value)."""
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def scrape_jobs(self, namespace: str) -> set[str]:
        """The scrape jobs of ``namespace``'s ServiceMonitors in the configuration Prometheus has
        loaded (``serviceMonitor/<namespace>/<name>/<endpoint>``)."""
        return _service_monitor_jobs(self.get("/api/v1/status/config")["yaml"], namespace)

    def generated_jobs(self, namespace: str) -> set[str]:
        """The same jobs in the configuration the operator wrote (its Secret), which the
        kubelet projects into the pod for the config reloader."""
        raw = self.plane.kubectl("get", "secret", f"prometheus-{NAME}", "-n", NAMESPACE, "-o",
                                 "jsonpath={.data.prometheus\\.yaml\\.gz}", check=False).stdout
        if not raw:
            return set()
        return _service_monitor_jobs(gzip.decompress(base64.b64decode(raw)).decode(), namespace)

    def await_service_monitors(self, namespace: str, timeout_s: float = 180) -> None:
        """Wait until Prometheus has loaded the scrape jobs of ``namespace``'s ServiceMonitors.

        Once in three node-tier runs here, Prometheus (operator 0.88) loaded no job for the
        ServiceMonitors created seconds after it started, and no reload followed: no target,
        for as long as the test waited (no dropped target either). Each NUDGE_S without the
        jobs, the Prometheus resource gets a fresh annotation, which makes the operator
        reconcile it and write its configuration again from the ServiceMonitors there are; a
        failure says whether the operator's Secret has the jobs (then the reload is missing)."""
        started = time.monotonic()
        nudges = 0
        while not self.scrape_jobs(namespace):
            if time.monotonic() > started + timeout_s:
                raise AssertionError(
                    f"no scrape job of {namespace}'s ServiceMonitors loaded after {timeout_s:.0f}s "
                    f"and {nudges} nudge(s); the operator's Secret has "
                    f"{sorted(self.generated_jobs(namespace))}\n{self.diagnose()}")
            time.sleep(1)
            if time.monotonic() > started + NUDGE_S * (nudges + 1):
                nudges += 1
                self.plane.kubectl("annotate", "prometheus", NAME, "-n", NAMESPACE,
                                   f"jobq.io/test-nudge={nudges}", "--overwrite")

    def diagnose(self) -> str:
        """What Prometheus scrapes and why not, its pod's logs, and the operator's."""
        targets = self.get("/api/v1/targets")
        active = [(t["labels"].get("job"), t["labels"].get("pod"), t["health"], t["lastError"])
                  for t in targets["activeTargets"]]
        parts = [f"active targets: {active}", f"dropped: {len(targets['droppedTargets'])}",
                 self.plane.kubectl("get", "servicemonitors,prometheusrules,prometheus", "-A",
                                    check=False).stdout]
        for container in ("prometheus", "config-reloader"):
            logs = self.plane.kubectl("logs", f"prometheus-{NAME}-0", "-n", NAMESPACE, "-c",
                                      container, "--tail=15", check=False)
            parts.append(f"--- {container}\n{logs.stdout}{logs.stderr}")
        parts.append(f"--- operator\n{self.operator.log_tail(15)}")
        return "\n".join(parts)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def _service_monitor_jobs(config: str, namespace: str) -> set[str]:
    """The ``job_name``s of ``namespace``'s ServiceMonitors in a Prometheus configuration."""
    mark = f"job_name: serviceMonitor/{namespace}/"
    return {line.strip().removeprefix("- ") for line in config.splitlines() if mark in line}


def _objects(images: dict[str, tuple[str, Path]], release: str) -> str:
    """The namespace, Prometheus's service account and read access, and the Prometheus resource."""
    selector = {"matchLabels": {"release": release}}
    rbac_rules = [
        {"apiGroups": [""], "resources": ["services", "endpoints", "pods"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["get", "list", "watch"]},
    ]
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "prometheus", "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "jobq-test-prometheus"}, "rules": rbac_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "jobq-test-prometheus"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "jobq-test-prometheus"},
         "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": NAMESPACE}]},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
         "metadata": {"name": NAME, "namespace": NAMESPACE},
         "spec": {
             "image": images["prometheus"][0],
             "version": PROMETHEUS_VERSION,
             "imagePullPolicy": "Never",
             "replicas": 1,
             "serviceAccountName": "prometheus",
             "scrapeInterval": SCRAPE_INTERVAL,
             "evaluationInterval": SCRAPE_INTERVAL,
             "serviceMonitorSelector": selector,
             "serviceMonitorNamespaceSelector": {},
             "podMonitorSelector": selector,
             "podMonitorNamespaceSelector": {},
             "ruleSelector": selector,
             "ruleNamespaceSelector": {},
             "resources": {"requests": {"memory": "200Mi"}},
         }},
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@contextmanager
def running_prometheus(cluster: NodeCluster, workdir: Path, release: str) -> Iterator[Prometheus]:
    """The operator's CRDs, the operator, and a running Prometheus; all removed afterwards."""
    plane: ControlPlane = cluster.plane
    crds = (cluster.node_bin / "prometheus-operator-crds").resolve()  # kubectl lstat()s a link
    cluster.phase("Prometheus Operator: CRDs, images into containerd, the operator")
    plane.kubectl("apply", "--server-side", "-f", str(crds), timeout_s=120)
    for _, archive in cluster.images.monitoring.values():
        cluster.node.import_image(archive)
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    processes = Processes(workdir)
    (web,) = free_ports(1)
    operator = processes.start("prometheus-operator", [
        "env", f"KUBECONFIG={plane.kubeconfig}",  # its client's only way to a kubeconfig
        cluster.node_bin / "prometheus-operator",
        f"--prometheus-config-reloader={cluster.images.monitoring['config-reloader'][0]}",
        f"--web.listen-address=127.0.0.1:{web}",
        "--log-level=info",
    ])
    try:
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.kubectl("apply", "-f", "-", input=_objects(cluster.images.monitoring, release))

        def pod_ip() -> str:
            result = plane.kubectl("get", "pod", f"prometheus-{NAME}-0", "-n", NAMESPACE, "-o",
                                   "jsonpath={.status.podIP}", check=False)
            return result.stdout.strip() if result.returncode == 0 else ""

        cluster.phase("waiting for the operator's Prometheus pod")
        wait_until(lambda: bool(pod_ip()), what="the operator to start Prometheus's pod",
                   timeout_s=180, alive=[operator])
        found = Prometheus(f"http://{pod_ip()}:9090", plane, operator)
        wait_until(found.answers, what="Prometheus ready", timeout_s=180, alive=[operator])
        yield found
    finally:
        plane.kubectl("delete", "prometheus", NAME, "-n", NAMESPACE, "--wait=true",
                      "--timeout=60s", check=False, timeout_s=90)
        processes.stop_all()
        plane.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s",
                      check=False, timeout_s=150)
        plane.kubectl("delete", "clusterrole,clusterrolebinding", "jobq-test-prometheus",
                      check=False)
