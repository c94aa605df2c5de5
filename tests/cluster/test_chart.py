"""The Helm chart: lint and schema-valid renders offline; against the real API server, an install
whose every object exists, CRDs with CEL rules that refuse a bad JobSchedule, the example
manifests accepted, and an uninstall that leaves nothing behind (nothing stuck Terminating)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .controlplane import CommandError, ControlPlane, wait_until

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobq"
MANIFESTS = REPO / "manifests"
VALUE_FILES = [None, *sorted((CHART / "ci").glob("*.yaml"))]
# Kinds the Kubernetes schemas do not know (CRD-defined), left out of schema validation.
NOT_IN_SCHEMAS = {"ServiceMonitor", "PrometheusRule", "KopfPeering", "JobSchedule"}
# The oldest version the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CEL_MESSAGE = "exactly one of spec.every or spec.schedule must be set"
# Small installs: one API pod, one operator pod, Redis without a volume.
SMALL = ["--set", "api.replicas=1", "--set", "operator.replicas=1",
         "--set", "redis.persistence.enabled=false"]


def _helm(bin_dir: Path, *args: str | Path) -> str:
    result = subprocess.run([str(bin_dir / "helm"), *map(str, args)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"helm {args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: "default" if v is None else v.stem)
def test_chart_lints_and_renders_schema_valid_objects(k8s_bin_dir: Path, values: Path | None) -> None:
    """Offline: `helm lint --strict`, then every rendered object against the Kubernetes schemas
    (strict: unknown fields are errors) of the oldest supported and the newest version."""
    extra = [] if values is None else ["-f", values]
    _helm(k8s_bin_dir, "lint", "--strict", CHART, *extra)
    if values is not None and "monitoring" in values.stem:
        extra += ["--api-versions", "monitoring.coreos.com/v1"]
    for version in KUBE_VERSIONS:
        rendered = _docs(_helm(k8s_bin_dir, "template", "jq", CHART, "--namespace", "jq",
                               "--include-crds", "--kube-version", version, *extra))
        kinds = {doc["kind"] for doc in rendered}
        assert {"CustomResourceDefinition", "Deployment", "Service"} <= kinds
        if values is not None and "monitoring" in values.stem:
            assert {"ServiceMonitor", "PrometheusRule"} <= kinds
        for doc in rendered:
            if doc["kind"] in NOT_IN_SCHEMAS:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} @ {version}: {exc}")


# --- against the API server ---


def _manifest_objects(plane: ControlPlane, release: str, namespace: str) -> list[dict[str, Any]]:
    return _docs(plane.helm("get", "manifest", release, "--namespace", namespace).stdout)


def _exists(plane: ControlPlane, obj: dict[str, Any], namespace: str) -> bool:
    """Whether the object is in the cluster (kubectl ignores --namespace for cluster-scoped)."""
    group, _, _ = obj["apiVersion"].rpartition("/")
    resource = obj["kind"].lower() + (f".{group}" if group else "")
    got = plane.kubectl("get", resource, obj["metadata"]["name"], "--namespace", namespace,
                        "-o", "name", check=False)
    return got.returncode == 0


def _schedule(name: str, **spec: Any) -> str:
    body = {"apiVersion": "jobq.io/v1", "kind": "JobSchedule", "metadata": {"name": name},
            "spec": {"type": "noop", "payload": {"n": 1}, **spec}}
    return json.dumps(body)


def test_install_apply_refuse_and_uninstall_cleanly(control_plane: ControlPlane) -> None:
    plane = control_plane
    ns = f"chart-{uuid.uuid4().hex[:6]}"
    release = "jq"
    plane.kubectl("create", "namespace", ns)
    wait_flags = ["--wait", "--timeout", "180s"] if plane.node_name else []
    plane.helm("install", release, CHART, "--namespace", ns, *SMALL, *wait_flags, timeout_s=240)

    # The CRDs are served, and every object of the release exists.
    for crd in ("jobschedules.jobq.io", "kopfpeerings.kopf.dev"):
        plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    objects = _manifest_objects(plane, release, ns)
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
            "KopfPeering", "Secret", "StatefulSet"} <= {o["kind"] for o in objects}
    missing = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if not _exists(plane, o, ns)]
    assert not missing, f"rendered but not in the cluster: {missing}"

    # The example JobSchedules are accepted as they are.
    applied = plane.kubectl("apply", "--namespace", ns, "-f", MANIFESTS).stdout
    examples = sorted(doc["metadata"]["name"] for path in MANIFESTS.glob("*.yaml")
                      for doc in _docs(path.read_text()) if doc["kind"] == "JobSchedule")
    assert examples and all(f"jobschedule.jobq.io/{name} created" in applied for name in examples)

    # Both triggers, or neither: refused by the API server's CEL rule, with its message.
    for bad in (_schedule("both", every="5m", schedule="* * * * *"), _schedule("neither")):
        with pytest.raises(CommandError) as refused:
            plane.kubectl("apply", "--namespace", ns, "-f", "-", input=bad)
        assert CEL_MESSAGE in refused.value.result.stderr
    # Bounds are checked too.
    with pytest.raises(CommandError) as refused:
        plane.kubectl("apply", "--namespace", ns, "-f", "-", input=_schedule("x", every="25h"))
    assert "spec.every must be between 1s and 24h" in refused.value.result.stderr
    assert plane.kubectl("get", "jobschedules", "--namespace", ns, "-o", "name").stdout.split() \
        == [f"jobschedule.jobq.io/{name}" for name in examples]

    # Uninstall (no operator runs now, as after a real `helm uninstall`), then the namespace:
    # nothing of the release is left, and no JobSchedule hangs on a finalizer.
    plane.helm("uninstall", release, "--namespace", ns, "--wait", "--timeout", "120s",
               timeout_s=180)
    leftovers = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if _exists(plane, o, ns)]
    assert not leftovers, f"left after helm uninstall: {leftovers}"
    labelled = plane.kubectl(
        "get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,"
        "poddisruptionbudgets,kopfpeerings", "--namespace", ns,
        "-l", f"app.kubernetes.io/instance={release}", "-o", "name",
    ).stdout.split()
    assert not [name for name in labelled if not name.startswith("pod/")], labelled
    schedules = json.loads(plane.kubectl("get", "jobschedules", "--namespace", ns, "-o",
                                         "json").stdout)["items"]
    assert all(not s["metadata"].get("finalizers") for s in schedules)
    plane.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", timeout_s=150)
    wait_until(
        lambda: plane.kubectl("get", "namespace", ns, check=False).returncode != 0,
        what=f"namespace {ns} to be gone", timeout_s=60,
    )


@pytest.mark.parametrize(("termination", "renders"), [(34, False), (35, True)])
def test_chart_needs_room_for_the_workers_watchdog(
    k8s_bin_dir: Path, termination: int, renders: bool
) -> None:
    """SIGKILL must not beat the worker's hand-back: terminationGracePeriodSeconds is at least the
    shutdown grace + 10 s (the worker's watchdog ends a stuck shutdown at grace + 8 s)."""
    result = subprocess.run(
        [str(k8s_bin_dir / "helm"), "template", "jq", str(CHART), "--set",
         "worker.shutdownGraceSeconds=25", "--set",
         f"worker.terminationGracePeriodSeconds={termination}"],
        capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) is renders, result.stderr
    if not renders:
        assert "must be at least shutdownGraceSeconds + 10 (35)" in result.stderr
