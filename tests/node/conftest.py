"""Fixtures of the real-node tier: the control plane of tests/cluster with a real node joined.

Everything is built or found before the first test (after collection), with the phase printed
live: the control plane's binaries (hack/k8s-tools.sh), the node's (hack/node-tools.sh), the pause
and Valkey images (hack/test-images.sh), all cached by version; then a real OCI registry starts on
loopback for the session (registry.py) and receives what a release publishes, two versions of it:
the jobq image built from the Dockerfile (hack/image.sh --push, by tag and digest) and the chart
(`helm push`). The node pulls the image from it and the chart installs from it (oci://).
The tier needs root on Linux; elsewhere it skips, and on CI it fails.
JOBQ_K8S_BIN and JOBQ_NODE_BIN name ready bin dirs instead of the two build scripts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
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
from .registry import Published, next_version, push_chart, running_registry

HERE = Path(__file__).parent
BUILD_TIMEOUT_S = float(os.environ.get("JOBQ_K8S_BUILD_TIMEOUT_S", "2400"))
IMAGE = "localhost/jobq:node-test"  # the local build's name; pods pull the registry's copy
PUSH_FAILED = 4  # hack/image.sh's exit code when the image was built but the push failed
LOCK = Path("/run/jobq-node.lock")  # one node per machine: it owns the bridge and the node dirs


@dataclass(frozen=True)
class Images:
    registry: Published  # the jobq image and chart, two versions
    valkey: str
    pause: str
    archives: tuple[Path, ...]  # imported when the node starts
    monitoring: dict[str, tuple[str, Path]]  # prometheus, config-reloader: imported when needed

    @property
    def jobq(self) -> str:
        """The first version's image, as pods name it: from the registry, tag and digest."""
        return self.registry.image(self.registry.versions[0])


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


@dataclass(frozen=True)
class Broken:
    """Publishing to the registry failed: a failure of the release path, never a skip."""

    reason: str


_ARTEFACTS = pytest.StashKey["Artefacts | Broken | str"]()
NEEDS_BUILD = {"node_cluster", "published"}
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


def _version() -> str:
    return run_script(REPO_ROOT / "hack" / "version.sh", timeout_s=30)[-1]


def _publish(config: pytest.Config, helm: Path, phase: Callable[[str], None]) -> Published:
    """Start the session's registry (stopped, its folder removed, when pytest ends) and publish
    to it what a release publishes, for this version and the next: the image built from the
    Dockerfile (the next one differs by its version label only, the Dockerfile's last step: its
    build is all cache hits and it shares every layer, so its push sends only a new config and
    manifest) and the chart packaged as that version. A failed push or chart push raises
    RuntimeError: the tier fails, it never skips."""
    workdir = Path(tempfile.mkdtemp(prefix="jobq-registry-"))
    stack = contextlib.ExitStack()
    config.add_cleanup(stack.close)
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    address = stack.enter_context(running_registry(workdir / "registry"))
    digests: dict[str, str] = {}
    version = _version()
    for name, release in ((IMAGE, version), (f"{IMAGE}-next", next_version(version))):
        phase(f"building {name} ({release}) from the Dockerfile and pushing it to the test "
              f"registry as {address}/jobq:{release} (hack/image.sh --push)")
        try:
            lines = run_script(REPO_ROOT / "hack" / "image.sh", "--tag", name, "--version", release,
                               "--push", f"{address}/jobq:{release}", timeout_s=BUILD_TIMEOUT_S)
        except ToolsUnavailable as exc:  # built but not pushed: the release path is broken
            if exc.returncode == PUSH_FAILED:
                raise RuntimeError(str(exc)) from exc
            raise
        if len(lines) < 2 or not lines[-2].startswith("sha256:"):
            raise RuntimeError(f"hack/image.sh --push printed no digest: {lines[-3:]}")
        digests[release] = lines[-2]
        phase(f"helm push: the chart as {release} to oci://{address}/charts")
        push_chart(helm, REPO_ROOT / "charts" / "jobq", address, release, workdir / "charts")
    return Published(address, digests)


def _build(config: pytest.Config) -> Artefacts | Broken | str:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the real node needs root on Linux (containerd, kubelet, iptables, mounts)"
    phase = _printer(config)
    try:
        with _live(config):
            phase("control-plane binaries (hack/k8s-tools.sh; cached)")
            k8s_bin = find_bin_dir(build_timeout_s=BUILD_TIMEOUT_S)
            phase("node binaries: kubelet, kube-proxy, CoreDNS, Traefik (hack/node-tools.sh; cached)")
            node_bin = Path(os.environ.get("JOBQ_NODE_BIN") or run_script(
                REPO_ROOT / "hack" / "node-tools.sh", timeout_s=BUILD_TIMEOUT_S)[-1])
            phase("pause, Valkey, Prometheus and config-reloader images (hack/test-images.sh; cached)")
            lines = run_script(REPO_ROOT / "hack" / "test-images.sh", timeout_s=BUILD_TIMEOUT_S)
            published = _publish(config, k8s_bin / "helm", phase)
    except (ToolsUnavailable, FileNotFoundError) as exc:
        return str(exc)
    except (RuntimeError, ValueError) as exc:
        return Broken(f"publishing to the test registry failed: {exc}")
    built = {what: (name, Path(file)) for what, name, file in (line.split() for line in lines[:-1])}
    images = Images(
        registry=published,
        valkey=built["valkey"][0],
        pause=built["pause"][0],
        archives=(built["pause"][1], built["valkey"][1]),
        monitoring={what: built[what] for what in ("prometheus", "config-reloader")},
    )
    return Artefacts(k8s_bin, node_bin, images)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build before any test starts (a cold build counts against no test's timeout)."""
    if session.config.option.collectonly:
        return
    if any(NEEDS_BUILD & set(getattr(item, "fixturenames", ())) for item in session.items):
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


def _artefacts(config: pytest.Config) -> Artefacts:
    artefacts = config.stash.get(_ARTEFACTS, None)
    if artefacts is None:
        artefacts = config.stash[_ARTEFACTS] = _build(config)
    if isinstance(artefacts, str):
        _unavailable(artefacts)
    if isinstance(artefacts, Broken):
        pytest.fail(artefacts.reason, pytrace=False)
    return artefacts


@pytest.fixture(scope="session")
def published(request: pytest.FixtureRequest) -> Published:
    """What the session's registry holds (no node needed to read it)."""
    return _artefacts(request.config).images.registry


@pytest.fixture(scope="session")
def helm(request: pytest.FixtureRequest) -> Path:
    return _artefacts(request.config).k8s_bin / "helm"


@pytest.fixture(scope="session")
def node_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeCluster]:
    """The control plane (kube-apiserver on the node's address) with the real node joined."""
    artefacts = _artefacts(request.config)
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
                registry=artefacts.images.registry.address,
                phase=phase,
            ) as node:
                phase(f"node {node.name} Ready")
                yield NodeCluster(plane, node, artefacts.images, artefacts.node_bin, phase)
        finally:
            phase("tearing down the node's host changes")
            problems = host.clean_host(before)
            if problems:
                pytest.fail(f"node teardown left: {problems}", pytrace=False)
