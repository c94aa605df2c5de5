"""The real node: a pod of the image built from the Dockerfile, pulled by the node from the
tier's registry by tag and digest, runs on it as the image's own non-root user, under the
restricted Pod Security Standard, and reaches Services by DNS name."""

from __future__ import annotations

import json
import uuid

from cluster.processes import wait_until

from .conftest import NodeCluster
from .pulls import check_pulls

RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def _pod(name: str, image: str, script: str) -> str:
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            # No runAsUser: the image's USER (10001) is what runs, and must not be root.
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    })


def _phase(cluster: NodeCluster, namespace: str, name: str) -> str:
    return cluster.plane.kubectl("get", "pod", name, "-n", namespace, "-o",
                                 "jsonpath={.status.phase}", check=False).stdout.strip()


def test_a_pod_of_the_built_image_runs_as_its_own_user(node_cluster: NodeCluster) -> None:
    cluster = node_cluster
    namespace = f"node-{uuid.uuid4().hex[:6]}"
    cluster.plane.kubectl("create", "namespace", namespace)
    cluster.plane.kubectl("label", "namespace", namespace, RESTRICTED)
    # The `kubernetes` Service by its DNS name: CoreDNS answers, kube-proxy routes to the API server.
    script = (
        "id -u; jobq --help | head -n 1; "
        "python -c \"import socket; s = socket.create_connection(('kubernetes.default.svc', 443), 5); "
        "print('api reachable', s.getpeername()[1])\""
    )
    cluster.plane.kubectl("apply", "-n", namespace, "-f", "-", input=_pod("probe", cluster.images.jobq, script))
    def finished() -> bool:
        check_pulls(cluster.plane, namespace)
        return _phase(cluster, namespace, "probe") in {"Succeeded", "Failed"}

    wait_until(finished, what="the probe pod to finish", timeout_s=180, alive=cluster.node.processes)
    logs = cluster.plane.kubectl("logs", "probe", "-n", namespace).stdout
    assert _phase(cluster, namespace, "probe") == "Succeeded", logs
    lines = logs.splitlines()
    assert lines[0] == "10001"
    assert lines[1].startswith("Usage: jobq")
    assert lines[2] == "api reachable 443"
    cluster.plane.kubectl("delete", "namespace", namespace, "--wait=false")
