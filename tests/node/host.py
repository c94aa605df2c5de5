"""What the real node changes on this host, and undoing it for sure.

The node's pods live on a bridge of our own (BRIDGE, POD_SUBNET) whose gateway address NODE_IP is
the node's address: kube-apiserver, the kubelet, CoreDNS and Traefik listen there, so pods reach
them and nothing is exposed beyond this machine (no masquerading: pods reach nothing outside).
`clean_host` removes everything a run (or a killed earlier run) left: containers and their shims,
network namespaces, mounts under the node's dirs, cgroups, iptables chains, the bridge.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BRIDGE = "jobq-br0"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
# Short fixed paths: containerd's shim sockets must fit a unix socket path (108 bytes).
NODE_ROOT = Path("/var/lib/jobq-node")
NODE_STATE = Path("/run/jobq-node")
CONTAINERD_SOCKET = NODE_STATE / "containerd.sock"
SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle")
# kubelet and kube-proxy name every chain they add KUBE-*.
CHAIN_PREFIX = "KUBE-"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=60)


@dataclass
class HostState:
    """What was there before the node: restored or kept by clean_host."""

    sysctls: dict[str, str] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    rules: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def snapshot() -> HostState:
    state = HostState()
    for key in SYSCTLS:
        state.sysctls[key] = Path("/proc/sys", key).read_text().strip()
    state.netns = _netns()
    for tool in IPTABLES:
        for table in TABLES:
            state.rules[(tool, table)] = set(_iptables_lines(tool, table))
    return state


def prepare_network() -> None:
    """The pods' bridge with the node's address, forwarding, and bridged traffic through iptables
    (kube-proxy's DNAT of a Service answer between two pods on the bridge needs it)."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    prefix = POD_SUBNET.split("/")[1]
    run("ip", "addr", "replace", f"{NODE_IP}/{prefix}", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    for key, value in SYSCTLS.items():
        Path("/proc/sys", key).write_text(value)
    for directory in (NODE_ROOT, NODE_STATE):
        directory.mkdir(parents=True, exist_ok=True)


def clean_host(before: HostState | None, containerd_socket: Path = CONTAINERD_SOCKET) -> list[str]:
    """Undo the node; returns what could not be undone (empty when all went). Safe to repeat."""
    problems: list[str] = []
    _kill_shims(problems)
    _remove_netns(before.netns if before else None, problems)
    _unmount_under((NODE_ROOT, NODE_STATE), problems)
    _remove_cgroups(problems)
    _remove_chains(before, problems)
    if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        run("ip", "link", "delete", BRIDGE, check=False)
    if before:
        for key, value in before.sysctls.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value)
    for directory in (NODE_ROOT, NODE_STATE):
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            problems.append(f"could not remove {directory}")
    return problems


def _kill_shims(problems: list[str]) -> None:
    """containerd's shims (and the containers under them) outlive containerd by design: kill
    those serving our containerd (by the socket in their command line) and all they started."""
    needle = str(CONTAINERD_SOCKET).encode()
    for pid in _pids():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"containerd-shim" in cmdline and needle in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    # Containers are children of the shims: wait for them in the node's cgroups to be gone.
    deadline = time.monotonic() + 20
    while _cgroup_pids() and time.monotonic() < deadline:
        for pid in _cgroup_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    if left := _cgroup_pids():
        problems.append(f"processes left in kubepods cgroups: {sorted(left)}")


def _pids() -> Iterable[int]:
    return (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())


def _kubepods_dirs() -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [d / "kubepods" for d in root.iterdir() if (d / "kubepods").is_dir()]


def _cgroup_pids() -> set[int]:
    found: set[int] = set()
    for top in _kubepods_dirs():
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                found.update(int(line) for line in procs.read_text().split())
    return found


def _remove_cgroups(problems: list[str]) -> None:
    for top in _kubepods_dirs():
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
        if top.exists():
            problems.append(f"could not remove cgroup {top}")


def _netns() -> set[str]:
    directory = Path("/run/netns")
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def _remove_netns(before: set[str] | None, problems: list[str]) -> None:
    """The CRI names pod network namespaces cni-<uuid>; remove those that are new."""
    for name in _netns():
        new = name.startswith("cni-") and (before is None or name not in before)
        if new and run("ip", "netns", "delete", name, check=False).returncode != 0:
            problems.append(f"could not delete netns {name}")


def _unmount_under(roots: Iterable[Path], problems: list[str]) -> None:
    prefixes = tuple(f"{root}/" for root in roots)
    for _ in range(3):
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefixes)
        ]
        if not mounts:
            return
        for point in sorted(set(mounts), key=len, reverse=True):
            run("umount", "-l", point, check=False)
    problems.append("mounts left under the node's dirs")


def _iptables_lines(tool: str, table: str) -> list[str]:
    if shutil.which(f"{tool}-save") is None:
        return []
    result = run(f"{tool}-save", "-t", table, check=False)
    return [line for line in result.stdout.splitlines() if CHAIN_PREFIX in line]


def _remove_chains(before: HostState | None, problems: list[str]) -> None:
    """Delete the KUBE-* rules and chains that were not there before (all of them when unknown):
    first the jumps into them, then the chains."""
    for tool in IPTABLES:
        for table in TABLES:
            kept = before.rules.get((tool, table), set()) if before else set()
            lines = [line for line in _iptables_lines(tool, table) if line not in kept]
            for line in lines:
                if line.startswith("-A "):
                    rule = shlex.split(line)[1:]
                    run(tool, "-w", "-t", table, "-D", *rule, check=False)
            chains = [line.split()[0][1:] for line in lines if line.startswith(":")]
            for chain in chains:
                run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                if run(tool, "-w", "-t", table, "-X", chain, check=False).returncode != 0:
                    problems.append(f"could not delete {tool} -t {table} chain {chain}")
