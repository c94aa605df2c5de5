"""Smoke tests proving the test control plane is a real one: RBAC enforced, workloads scheduled
onto the kwok Node and turned Running, `helm install --wait` finishing, pinned tool versions."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .controlplane import FAKE_NODE, ControlPlane, pinned_versions, wait_until

pytestmark = [pytest.mark.cluster]

ROLLOUT_TIMEOUT = "120s"


def _needs_nodes(plane: ControlPlane) -> None:
    if plane.node_name is None:
        pytest.skip("no kube-controller-manager/kube-scheduler/kwok in the bin dir, so no pods")


def test_service_account_token_gets_exactly_its_rbac(control_plane: ControlPlane) -> None:
    """A fresh ServiceAccount may not list secrets until a RoleBinding grants it."""
    ns = "smoke-rbac"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", ns)
    control_plane.kubectl("create", "secret", "generic", "s1", "-n", ns, "--from-literal=k=v")
    sa_config = control_plane.service_account_kubeconfig(ns, "reader")

    def as_reader(*args: str) -> subprocess.CompletedProcess[str]:
        return control_plane.kubectl(*args, kubeconfig=sa_config, check=False)

    whoami = json.loads(as_reader("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"

    denied = as_reader("get", "secrets", "-n", ns)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()

    control_plane.kubectl(
        "create", "role", "secret-reader", "-n", ns, "--verb=list,get", "--resource=secrets"
    )
    control_plane.kubectl(
        "create", "rolebinding", "reader-reads", "-n", ns, "--role=secret-reader",
        f"--serviceaccount={ns}:reader",
    )  # fmt: skip
    # The RBAC authorizer reads bindings from an informer: allowed once it has seen the new one.
    wait_until(
        lambda: as_reader("get", "secrets", "-n", ns).returncode == 0,
        what="the RoleBinding to take effect",
        timeout_s=30,
    )
    assert as_reader("get", "secrets", "-n", ns, "-o", "name").stdout.split() == ["secret/s1"]
    # Nothing beyond the binding: not secrets elsewhere, not writes.
    assert as_reader("get", "secrets", "-n", "default").returncode != 0
    assert as_reader("delete", "secret", "s1", "-n", ns).returncode != 0


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "smoke-pods"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            # Never pulled: kwok only pretends to run it.
            "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
        },
    },
}


def test_deployment_gets_running_pods_on_the_kwok_node(control_plane: ControlPlane) -> None:
    """Deployment -> ReplicaSet -> Pods -> scheduled onto the kwok Node -> Running."""
    _needs_nodes(control_plane)
    control_plane.kubectl("create", "namespace", "smoke-pods")
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))
    control_plane.kubectl(
        "rollout", "status", "deployment/web", "-n", "smoke-pods", f"--timeout={ROLLOUT_TIMEOUT}"
    )
    pods = json.loads(
        control_plane.kubectl(
            "get", "pods", "-n", "smoke-pods", "-l", "app=web", "-o", "json"
        ).stdout
    )
    assert [(p["spec"]["nodeName"], p["status"]["phase"]) for p in pods["items"]] == [
        (FAKE_NODE, "Running")
    ] * 2


def _write_chart(root: Path) -> Path:
    chart = root / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\n")
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "{{ .Release.Name }}-store"},
        "spec": {
            "replicas": 1,
            "serviceName": "{{ .Release.Name }}-store",
            "selector": {"matchLabels": {"app": "store"}},
            "template": {
                "metadata": {"labels": {"app": "store"}},
                "spec": {"containers": [{"name": "store", "image": "example.invalid/store:1"}]},
            },
            # Provisioned and bound by kwok's volume stages through the default StorageClass.
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    deployment = json.loads(json.dumps(DEPLOYMENT))
    deployment["metadata"] = {"name": "{{ .Release.Name }}-web"}
    (chart / "templates" / "workloads.yaml").write_text(
        json.dumps(statefulset) + "\n---\n" + json.dumps(deployment)
    )
    return chart


def test_helm_install_wait_finishes(control_plane: ControlPlane, tmp_path: Path) -> None:
    """`helm install --wait` sees a Deployment and a StatefulSet with a PVC become ready."""
    _needs_nodes(control_plane)
    chart = _write_chart(tmp_path)
    control_plane.helm(
        "install",
        "smoke",
        chart,
        "-n",
        "smoke-helm",
        "--create-namespace",
        "--wait",
        f"--timeout={ROLLOUT_TIMEOUT}",
    )
    status = json.loads(
        control_plane.helm("status", "smoke", "-n", "smoke-helm", "-o", "json").stdout
    )
    assert status["info"]["status"] == "deployed"
    pvc_phase = control_plane.kubectl(
        "get", "pvc", "data-smoke-store-0", "-n", "smoke-helm", "-o", "jsonpath={.status.phase}"
    )
    assert pvc_phase.stdout == "Bound"


def test_tools_report_pinned_versions(control_plane: ControlPlane) -> None:
    """helm, kubectl and (unless binaries came from elsewhere) the server are the pinned versions."""
    pins = pinned_versions()
    assert (
        control_plane.helm("version", "--template", "{{.Version}}").stdout == pins["HELM_VERSION"]
    )
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert versions["clientVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    if not (os.environ.get("JOBQ_K8S_BIN") or os.environ.get("KUBEBUILDER_ASSETS")):
        assert versions["serverVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
