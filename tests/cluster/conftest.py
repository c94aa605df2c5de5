"""Fixtures for tests against a real Kubernetes API server (see controlplane.py).

Every test under tests/cluster is marked `cluster` (select with `-m cluster`, leave out with
`-m "not cluster"`). The binaries are found or built once, after collection and before the first
test, so a cold build (minutes) counts against no test's timeout; BUILD_TIMEOUT_S bounds it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from .controlplane import ControlPlane, ToolsUnavailable, find_bin_dir, running_control_plane

HERE = Path(__file__).parent
# A cold build of every binary on 2 cores takes about 12 minutes; override with the env var.
BUILD_TIMEOUT_S = float(os.environ.get("JOBQ_K8S_BUILD_TIMEOUT_S", "2400"))
# The bin dir, or why there is none, found once per session.
_BIN_DIR = pytest.StashKey["Path | str"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs a real Kubernetes API server (tests/cluster)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build before any test starts, when a selected test needs the binaries."""
    if session.config.option.collectonly:
        return
    if any("k8s_bin_dir" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[_BIN_DIR] = _find_bin_dir(session.config)


def _find_bin_dir(config: pytest.Config) -> Path | str:
    capture = config.pluginmanager.getplugin("capturemanager")
    # Show the build's progress live: a cold build takes many minutes.
    live = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    try:
        with live:
            return find_bin_dir(build_timeout_s=BUILD_TIMEOUT_S)
    except ToolsUnavailable as exc:
        return str(exc)


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine without the toolchain; on CI a missing cluster is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"Kubernetes test binaries unavailable on CI: {reason}", pytrace=False)
    pytest.skip(f"Kubernetes test binaries unavailable: {reason}")


@pytest.fixture(scope="session")
def k8s_bin_dir(request: pytest.FixtureRequest) -> Path:
    """Dir with etcd, kube-apiserver, kubectl, helm (and the workload tools), built once per cache."""
    found = request.config.stash.get(_BIN_DIR, None)
    if found is None:  # not foreseen at collection (e.g. requested dynamically)
        found = request.config.stash[_BIN_DIR] = _find_bin_dir(request.config)
    if isinstance(found, str):
        _unavailable(found)
    return found


@pytest.fixture(scope="session")
def control_plane(
    k8s_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver (RBAC) + controllers + scheduler + a kwok Node, for the whole session."""
    with running_control_plane(k8s_bin_dir, tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane
