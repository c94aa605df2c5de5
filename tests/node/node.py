"""A real Kubernetes node joined to the test control plane, started from local binaries.

containerd + runc + the CNI bridge plugin (Debian's packages) run the pods; kubelet and kube-proxy
are built from the control plane's own k8s.io/kubernetes pin (hack/node-tools.sh); CoreDNS, built
from its Go module, serves cluster.local behind the usual kube-dns Service (so pod DNS goes through
kube-proxy like everything else). containerd pulls the jobq image from the tier's OCI registry
(registry.py) over plain HTTP, configured by a hosts.toml under the node's workdir; the images jobq
does not build (pause, Valkey, Prometheus) come from archives imported into containerd, and pods
use them with imagePullPolicy Never. See host.py for what the node changes on this host.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cluster.controlplane import ControlPlane
from cluster.processes import Process, Processes, free_ports, http_ok, wait_until

from . import host
from .host import CONTAINERD_SOCKET, NODE_IP, NODE_ROOT, NODE_STATE, POD_SUBNET
from .registry import containerd_hosts

NODE_NAME = "jobq-node"
CLUSTER_DNS_IP = "10.96.0.10"  # in the control plane's Service CIDR, like kubeadm's
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
NODE_READY_TIMEOUT_S = 180.0


@dataclass
class Node:
    """The running node: its name, containerd client, and the processes behind it."""

    plane: ControlPlane
    name: str
    processes: list[Process]

    def ctr(self, *args: str | Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """ctr against the node's containerd, in the CRI's namespace (k8s.io)."""
        argv = ["ctr", "--address", str(CONTAINERD_SOCKET), "--namespace", "k8s.io", *map(str, args)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr}")
        return result

    def import_image(self, archive: Path) -> None:
        self.ctr("images", "import", archive, timeout_s=600)

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()


def _write_json(path: Path, data: object) -> Path:
    """JSON is YAML: every config file here is written as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def _containerd_config(workdir: Path, sandbox_image: str, registry: str) -> Path:
    cni_conf_dir = workdir / "cni"
    _write_json(
        cni_conf_dir / "10-jobq.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "jobq-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": host.BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,  # pods reach this host and each other, nothing beyond
                    "hairpinMode": True,  # a pod reaching itself through its Service
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(NODE_ROOT / "cni-ipam"),
                    },
                }
            ],
        },
    )
    config = f"""\
version = 2
root = "{NODE_ROOT / 'containerd'}"
state = "{NODE_STATE / 'containerd'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # This sandbox may not lower oom_score_adj (no CAP_SYS_RESOURCE): runc fails on the kubelet's
  # -998 for the pause container unless adjustments are capped at containerd's own value.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{containerd_hosts(workdir / 'certs.d', registry)}"
"""
    path = workdir / "containerd.toml"
    path.write_text(config)
    return path


def _kubelet_config(workdir: Path, port: int, healthz_port: int) -> Path:
    resolv = workdir / "resolv.conf"  # no host search domains or upstreams in pods
    resolv.write_text("")
    return _write_json(
        workdir / "kubelet.json",
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host has only cgroup v1; kubelet >= 1.35 refuses it unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",  # no systemd here; containerd's runc uses cgroupfs too
            "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "address": NODE_IP,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            # kube-apiserver reaches the kubelet (logs, exec) with no client certificate.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [CLUSTER_DNS_IP],
            "resolvConf": str(resolv),
            "failSwapOn": False,
            # The imported images have no registry to be pulled back from: never collect one.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "serializeImagePulls": False,
            "syncFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
            "shutdownGracePeriod": "0s",
        },
    )


def _kube_proxy_config(workdir: Path, kubeconfig: Path, healthz_port: int, metrics_port: int) -> Path:
    return _write_json(
        workdir / "kube-proxy.json",
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "healthzBindAddress": f"127.0.0.1:{healthz_port}",
            "metricsBindAddress": f"127.0.0.1:{metrics_port}",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # Leave this host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
            "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        },
    )


def _corefile(workdir: Path, kubeconfig: Path, context: str, port: int, ready_port: int) -> Path:
    path = workdir / "Corefile"
    path.write_text(f"""\
.:{port} {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} {context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")
    return path


def _dns_objects(port: int) -> str:
    """kube-dns: a selector-less Service whose one endpoint is CoreDNS on the node's address."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "clusterIP": CLUSTER_DNS_IP,
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}],
        },
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kube-dns-node",
            "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "kube-dns",
                       "endpointslice.kubernetes.io/managed-by": "jobq-tests"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": port, "protocol": "TCP"}],
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, endpoints]})


def _context_name(kubeconfig: Path) -> str:
    return str(json.loads(kubeconfig.read_text())["current-context"])


def _node_ready(plane: ControlPlane) -> bool:
    status = plane.kubectl(
        "get", "node", NODE_NAME, "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False,
    )
    return status.stdout.strip() == "True"


@contextlib.contextmanager
def running_node(
    plane: ControlPlane,
    node_bin: Path,
    workdir: Path,
    *,
    sandbox_image: str,
    archives: list[Path],
    registry: str,
    phase: Callable[[str], None],
) -> Iterator[Node]:
    """Start containerd (pulling from `registry`, 127.0.0.1:<port>, over plain HTTP), import the
    archives, then kubelet, kube-proxy and CoreDNS; undo it all on exit.

    The caller has run host.prepare_network() (kube-apiserver listens on the node's address)."""
    processes = Processes(workdir / "logs")
    try:
        yield _start(plane, node_bin, workdir, processes, sandbox_image, archives, registry, phase)
    finally:
        phase("stopping the node")
        processes.stop_all()
        subprocess.run([str(node_bin / "kube-proxy"), "--cleanup"], capture_output=True, timeout=60,
                       check=False)


def _start(
    plane: ControlPlane,
    node_bin: Path,
    workdir: Path,
    processes: Processes,
    sandbox_image: str,
    archives: list[Path],
    registry: str,
    phase: Callable[[str], None],
) -> Node:
    phase("starting containerd")
    containerd = processes.start(
        "containerd", ["containerd", "--config", _containerd_config(workdir, sandbox_image, registry)]
    )
    node = Node(plane, NODE_NAME, [containerd])

    def containerd_up() -> bool:
        try:
            node.ctr("version", timeout_s=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    wait_until(containerd_up, what="containerd to answer", alive=[containerd])
    for archive in archives:
        phase(f"importing {archive.name} into containerd")
        node.import_image(archive)

    phase("starting kubelet")
    kubelet_port, kubelet_healthz, proxy_healthz, proxy_metrics, dns_port, dns_ready = free_ports(6)
    kubelet = processes.start(
        "kubelet",
        [
            node_bin / "kubelet",
            f"--config={_kubelet_config(workdir, kubelet_port, kubelet_healthz)}",
            f"--kubeconfig={plane.kubeconfig}",
            f"--root-dir={NODE_ROOT / 'kubelet'}",
            f"--cert-dir={NODE_ROOT / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ],
    )
    node.processes.append(kubelet)
    wait_until(lambda: _node_ready(plane), what=f"Node {NODE_NAME} Ready",
               timeout_s=NODE_READY_TIMEOUT_S, alive=[containerd, kubelet])

    phase("starting kube-proxy and CoreDNS")
    proxy = processes.start(
        "kube-proxy",
        [node_bin / "kube-proxy",
         f"--config={_kube_proxy_config(workdir, plane.kubeconfig, proxy_healthz, proxy_metrics)}"],
    )
    node.processes.append(proxy)
    coredns = processes.start(
        "coredns",
        [node_bin / "coredns", "-conf",
         _corefile(workdir, plane.kubeconfig, _context_name(plane.kubeconfig), dns_port, dns_ready)],
    )
    node.processes.append(coredns)
    plane.kubectl("apply", "-f", "-", input=_dns_objects(dns_port))
    wait_until(lambda: http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"),
               what="kube-proxy /healthz", alive=[proxy])
    wait_until(lambda: http_ok(f"http://127.0.0.1:{dns_ready}/ready"),
               what="CoreDNS /ready", alive=[coredns])
    return node
