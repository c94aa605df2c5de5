"""A real Kubernetes control plane for tests, started from local binaries.

etcd + kube-apiserver (RBAC on, ServiceAccount tokens signed with our own key) as envtest does,
plus kube-controller-manager, kube-scheduler and kwok with one fake Node, so that Deployments and
StatefulSets get Running pods and `helm install --wait` can finish. No kubelet, no containers: pods
only look Running. The binaries come from hack/k8s-tools.sh (built once into a cache outside the
repo) or from JOBQ_K8S_BIN.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .pki import write_pki
from .processes import ComponentFailed, Process, Processes, free_ports, http_ok, wait_until
from .tools import WORKLOAD_TOOLS, ToolsUnavailable, find_bin_dir, pinned_versions

__all__ = [
    "FAKE_NODE",
    "CommandError",
    "ComponentFailed",
    "ControlPlane",
    "ToolsUnavailable",
    "find_bin_dir",
    "pinned_versions",
    "running_control_plane",
    "wait_until",
    "write_kubeconfig",
]

ADMIN_USER = "jobq-test-admin"  # in group system:masters, via --token-auth-file
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR, taken by the `kubernetes` Service
ISSUER = "https://kubernetes.default.svc.cluster.local"
# kwok hands out pod IPs from here. Data only: nothing listens on them and no test may connect.
POD_CIDR = "10.244.0.1/24"
FAKE_NODE = "kwok-node-0"
KWOK_SELECTOR = "kwok.x-k8s.io/node=fake"  # annotation that hands a Node to kwok
# The default StorageClass; kwok's stages provision and bind its PVCs (StatefulSets with storage).
KWOK_STORAGE_CLASS = "kwok-volume"
# The controllers workloads need; no cloud, node-lifecycle, IPAM or certificate controllers.
CONTROLLERS = (
    "deployment-controller,replicaset-controller,statefulset-controller,"
    "daemonset-controller,job-controller,cronjob-controller,disruption-controller,"
    "ttl-after-finished-controller,pod-garbage-collector-controller,"
    "garbage-collector-controller,namespace-controller,serviceaccount-controller,"
    "root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,"
    "endpoints-controller,endpointslice-controller,persistentvolume-binder-controller,"
    # Admission puts their finalizers on every PVC and PV: without them a namespace holding a
    # PVC never finishes deleting.
    "persistentvolumeclaim-protection-controller,persistentvolume-protection-controller"
)


class CommandError(Exception):
    """kubectl or helm exited non-zero; the message carries its output."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
        )


def write_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, user: str, token: str, namespace: str = "default"
) -> Path:
    """A one-context kubeconfig (JSON, which is YAML) authenticating with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "jobq-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_cert.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": user,
                "context": {"cluster": "jobq-test", "user": user, "namespace": namespace},
            }
        ],
        "current-context": user,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """A running control plane, and runners for kubectl and helm pointed at it."""

    bin_dir: Path
    kubeconfig: Path  # admin (system:masters)
    server: str  # https://127.0.0.1:<port>
    ca_cert: Path
    workdir: Path
    node_name: str | None  # the kwok Node pods run on; None when the workload tools are missing
    _kubeconfigs: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """Environment for a child process: our kubectl/helm first on PATH, caches in workdir."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")  # no stale discovery from $HOME
        for kind in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{kind}_HOME"] = str(self.workdir / "helm" / kind.lower())
        return env

    def run(
        self,
        tool: str,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout_s: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run a binary from bin_dir; raise CommandError on a non-zero exit when check is set."""
        result = subprocess.run(
            [str(self.bin_dir / tool), *map(str, args)],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(kubeconfig),
            timeout=timeout_s,
        )
        if check and result.returncode != 0:
            raise CommandError(result)
        return result

    def kubectl(
        self,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout_s: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl, as admin unless kubeconfig is given (see run())."""
        return self.run(
            "kubectl", *args, input=input, check=check, kubeconfig=kubeconfig, timeout_s=timeout_s
        )

    def helm(
        self,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout_s: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """helm, as admin unless kubeconfig is given (see run())."""
        return self.run(
            "helm", *args, input=input, check=check, kubeconfig=kubeconfig, timeout_s=timeout_s
        )

    def service_account_kubeconfig(
        self, namespace: str, sa_name: str, *, duration: str = "2h"
    ) -> Path:
        """A kubeconfig holding a TokenRequest token of that ServiceAccount, so a process gets exactly its RBAC."""
        token = self.kubectl(
            "create", "token", sa_name, "--namespace", namespace, f"--duration={duration}"
        ).stdout.strip()
        path = (
            self.workdir / "kubeconfigs" / f"{namespace}.{sa_name}.{next(self._kubeconfigs)}.json"
        )
        return write_kubeconfig(
            path,
            server=self.server,
            ca_cert=self.ca_cert,
            user=f"system:serviceaccount:{namespace}:{sa_name}",
            token=token,
            namespace=namespace,
        )


@contextlib.contextmanager
def running_control_plane(
    bin_dir: Path, workdir: Path, *, address: str = "127.0.0.1", fake_node: bool = True
) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver and (when built) the workload components; stop them all on exit.

    address: where kube-apiserver listens. On loopback (the default) nothing outside this host's
    network namespace reaches it, so the `kubernetes` Service has no endpoints; any other local
    address (a real node's, that its pods reach) is advertised as that Service's endpoint.
    fake_node: start kwok with its fake Node (pods only look Running); False leaves the pods to
    a real kubelet that the caller joins.
    """
    processes = Processes(workdir / "logs")
    etcd_data = workdir / "etcd"
    try:
        yield _start(bin_dir, workdir, processes, etcd_data, address=address, fake_node=fake_node)
    finally:
        processes.stop_all()
        shutil.rmtree(etcd_data, ignore_errors=True)  # etcd preallocates 64 MB WAL files


def _start(
    bin_dir: Path,
    workdir: Path,
    processes: Processes,
    etcd_data: Path,
    *,
    address: str,
    fake_node: bool,
) -> ControlPlane:
    loopback = address == "127.0.0.1"
    pki = write_pki(
        workdir / "pki",
        ip_sans=sorted({"127.0.0.1", address, SERVICE_IP}),
        dns_sans=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )
    admin_token = secrets.token_urlsafe(32)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    tokens.chmod(0o600)
    etcd_port, etcd_peer_port, apiserver_port = free_ports(3)

    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{etcd_peer_port}"
    etcd = processes.start(
        "etcd",
        [
            bin_dir / "etcd",
            "--name=default",
            f"--data-dir={etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",  # throwaway data: skip the disk flushes
            "--log-level=warn",
        ],
    )
    wait_until(lambda: http_ok(f"{etcd_url}/health"), what="etcd /health", alive=[etcd])

    server = f"https://{address}:{apiserver_port}"
    # A loopback address cannot back the `kubernetes` Service; any other is kept as its endpoint.
    reconciler = ["--endpoint-reconciler-type=none"] if loopback else []
    apiserver = processes.start(
        "kube-apiserver",
        [
            bin_dir / "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={apiserver_port}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *reconciler,
            "--kubelet-preferred-address-types=InternalIP",  # a real node's name is not in DNS
            "--allow-privileged=true",
            # It taints new Nodes not-ready until node-lifecycle-controller, which we don't run, clears it.
            "--disable-admission-plugins=TaintNodesByCondition",
            f"--cert-dir={workdir / 'apiserver-certs'}",
        ],
    )
    tls = ssl.create_default_context(cafile=str(pki.ca_cert))
    wait_until(
        lambda: http_ok(f"{server}/readyz", context=tls, token=admin_token),
        what="kube-apiserver /readyz",
        alive=[etcd, apiserver],
    )
    kubeconfig = write_kubeconfig(
        workdir / "admin.kubeconfig",
        server=server,
        ca_cert=pki.ca_cert,
        user=ADMIN_USER,
        token=admin_token,
    )
    plane = ControlPlane(bin_dir, kubeconfig, server, pki.ca_cert, workdir, node_name=None)
    needed = WORKLOAD_TOOLS if fake_node else ("kube-controller-manager", "kube-scheduler")
    if all((bin_dir / tool).is_file() for tool in needed):
        _start_workloads(plane, processes, [etcd, apiserver], fake_node=fake_node)
    return plane


def _start_workloads(
    plane: ControlPlane, processes: Processes, core: list[Process], *, fake_node: bool
) -> None:
    """Controllers, scheduler and (fake_node) kwok with one fake Node: Deployments get pods."""
    bin_dir, kubeconfig = plane.bin_dir, plane.kubeconfig
    kcm = processes.start(
        "kube-controller-manager",
        [
            bin_dir / "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--root-ca-file={plane.ca_cert}",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    scheduler = processes.start(
        "kube-scheduler",
        [
            bin_dir / "kube-scheduler",
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    if not fake_node:
        _await_default_service_account(plane, [*core, kcm, scheduler])
        return
    kwok = processes.start(
        "kwok",
        [
            bin_dir / "kwok",
            f"--kubeconfig={kubeconfig}",
            f"--config={bin_dir / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_SELECTOR}",
            "--node-ip=127.0.0.1",  # so anything that dials the "kubelet" stays on loopback
            f"--cidr={POD_CIDR}",
            "--node-lease-duration-seconds=0",
        ],
    )
    alive = [*core, kcm, scheduler, kwok]
    plane.kubectl("apply", "-f", "-", input=json.dumps(_fake_node_manifests()))
    wait_until(lambda: _node_ready(plane), what=f"kwok to make Node {FAKE_NODE} Ready", alive=alive)
    _await_default_service_account(plane, alive)
    plane.node_name = FAKE_NODE


def _await_default_service_account(plane: ControlPlane, alive: list[Process]) -> None:
    """Pods are refused until the namespace's default ServiceAccount exists."""
    wait_until(
        lambda: plane.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        what="the serviceaccount controller to create default/default",
        alive=alive,
    )


def _node_ready(plane: ControlPlane) -> bool:
    status = plane.kubectl(
        "get",
        "node",
        FAKE_NODE,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        check=False,
    )
    return status.stdout.strip() == "True"


def _fake_node_manifests() -> dict[str, object]:
    key, value = KWOK_SELECTOR.split("=")
    resources = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": FAKE_NODE,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": FAKE_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": KWOK_STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kwok.x-k8s.io/volume",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    return {"apiVersion": "v1", "kind": "List", "items": [node, storage_class]}
