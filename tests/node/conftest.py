"""Fixtures of the real-node tier: the control plane of tests/cluster with a real node joined.

Everything is built or found before the first test (after collection), with the phase printed
live: the control plane's binaries (hack/k8s-tools.sh), the node's (hack/node-tools.sh), the jobq
image from the Dockerfile (hack/image.sh) and the pause and Valkey images (hack/test-images.sh),
all cached by version. The tier needs root on Linux; elsewhere it skips, and on CI it fails.
JOBQ_K8S_BIN and JOBQ_NODE_BIN name ready bin dirs instead of the two build scripts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from cluster.controlplane import ControlPlane, running_control_plane
from cluster.tools import REPO_ROOT, ToolsUnavailable, find_bin_dir, run_script

from . import host
from .node import Node, running_node

HERE = Path(__file__).parent
BUILD_TIMEOUT_S = float(os.environ.get("JOBQ_K8S_BUILD_TIMEOUT_S", "2400"))
IMAGE = "localhost/jobq:node-test"
LOCK = Path("/run/jobq-node.lock")  # one node per machine: it owns the bridge and the node dirs


@dataclass(frozen=True)
class Images:
    jobq: str  # repository:tag
    valkey: str
    pause: str
    archives: tuple[Path, ...]  # imported when the node starts
    monitoring: dict[str, tuple[str, Path]]  # prometheus, config-reloader: imported when needed


@dataclass(frozen=True)
class Artefacts:
    k8s_bin: Path
    node_bin: Path
    images: Images


@dataclass(frozen=True)
class NodeCluster:
    plane: ControlPlane
    node: Node
    images: Images
    node_bin: Path
    phase: Callable[[str], None]


_ARTEFACTS = pytest.StashKey["Artefacts | str"]()
_STARTED = time.monotonic()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)


def _printer(config: pytest.Config) -> Callable[[str], None]:
    """Prints a phase line live, past pytest's capture: a person watching a cold build sees it."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def phase(text: str) -> None:
        live = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with live:
            sys.stderr.write(f"\n==> node tier [{time.monotonic() - _STARTED:5.0f}s]: {text}\n")
            sys.stderr.flush()

    return phase


def _live(config: pytest.Config) -> contextlib.AbstractContextManager[object]:
    capture = config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()


def _build(config: pytest.Config) -> Artefacts | str:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the real node needs root on Linux (containerd, kubelet, iptables, mounts)"
    phase = _printer(config)
    cache = Path(os.environ.get("JOBQ_CACHE_DIR", Path.home() / ".cache" / "jobq"))
    try:
        with _live(config):
            phase("control-plane binaries (hack/k8s-tools.sh; cached)")
            k8s_bin = find_bin_dir(build_timeout_s=BUILD_TIMEOUT_S)
            phase("node binaries: kubelet, kube-proxy, CoreDNS, Traefik (hack/node-tools.sh; cached)")
            node_bin = Path(os.environ.get("JOBQ_NODE_BIN") or run_script(
                REPO_ROOT / "hack" / "node-tools.sh", timeout_s=BUILD_TIMEOUT_S)[-1])
            phase(f"building {IMAGE} from the Dockerfile (hack/image.sh: buildah, local base image)")
            archive = cache / "images" / "archives" / "jobq-node-test.tar"
            run_script(REPO_ROOT / "hack" / "image.sh", "--tag", IMAGE, "--archive", str(archive),
                       timeout_s=BUILD_TIMEOUT_S)
            phase("pause, Valkey, Prometheus and config-reloader images (hack/test-images.sh; cached)")
            lines = run_script(REPO_ROOT / "hack" / "test-images.sh", timeout_s=BUILD_TIMEOUT_S)
    except ToolsUnavailable as exc:
        return str(exc)
    built = {what: (name, Path(file)) for what, name, file in (line.split() for line in lines[:-1])}
    images = Images(
        jobq=IMAGE,
        valkey=built["valkey"][0],
        pause=built["pause"][0],
        archives=(built["pause"][1], built["valkey"][1], archive),
        monitoring={what: built[what] for what in ("prometheus", "config-reloader")},
    )
    return Artefacts(k8s_bin, node_bin, images)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build before any test starts (a cold build counts against no test's timeout)."""
    if session.config.option.collectonly:
        return
    if any("node_cluster" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[_ARTEFACTS] = _build(session.config)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"real node unavailable on CI: {reason}", pytrace=False)
    pytest.skip(f"real node unavailable: {reason}")


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def node_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeCluster]:
    """The control plane (kube-apiserver on the node's address) with the real node joined."""
    artefacts = request.config.stash.get(_ARTEFACTS, None)
    if artefacts is None:
        artefacts = request.config.stash[_ARTEFACTS] = _build(request.config)
    if isinstance(artefacts, str):
        _unavailable(artefacts)
    phase = _printer(request.config)
    workdir = tmp_path_factory.mktemp("node")
    with _machine_lock():
        stale = host.clean_host(None)  # what a killed earlier run left
        if stale:
            phase(f"warning: left by an earlier run and not removable: {stale}")
        before = host.snapshot()
        try:
            host.prepare_network()
            phase("starting the control plane (etcd, kube-apiserver, controllers, scheduler)")
            with running_control_plane(
                artefacts.k8s_bin, workdir / "plane", address=host.NODE_IP, fake_node=False
            ) as plane, running_node(
                plane,
                artefacts.node_bin,
                workdir / "node",
                sandbox_image=artefacts.images.pause,
                archives=list(artefacts.images.archives),
                phase=phase,
            ) as node:
                phase(f"node {node.name} Ready")
                yield NodeCluster(plane, node, artefacts.images, artefacts.node_bin, phase)
        finally:
            phase("tearing down the node's host changes")
            problems = host.clean_host(before)
            if problems:
                pytest.fail(f"node teardown left: {problems}", pytrace=False)
