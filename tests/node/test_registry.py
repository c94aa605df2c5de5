"""The release path through a real OCI registry (Debian's docker-registry on loopback): the
image built from the Dockerfile is pushed by tag and comes back with the same digest, the
packaged chart is pushed with `helm push` and installs from `oci://` by version with the
image pinned by that digest. Needs root (buildah) and the tier's helm; no node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster.tools import REPO_ROOT, ToolsUnavailable, find_bin_dir, run_script

from .registry import running_registry

IMAGE = "localhost/jobq:node-test"  # the tier's image (tests/node/conftest.py)


def _version() -> str:
    return subprocess.run(["bash", str(REPO_ROOT / "hack" / "version.sh")], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.fixture(scope="module")
def helm() -> str:
    if sys.platform != "linux" or os.geteuid() != 0:
        reason = "buildah needs root on Linux"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        return str(find_bin_dir(build_timeout_s=2400) / "helm")
    except ToolsUnavailable as exc:
        pytest.skip(str(exc))


def test_image_and_chart_go_through_the_registry_by_version_and_digest(
        helm: str, tmp_path: Path) -> None:
    version = _version()
    with running_registry(tmp_path / "registry") as registry:
        lines = run_script(REPO_ROOT / "hack" / "image.sh", "--tag", IMAGE,
                           "--push", f"{registry}/jobq:{version}", timeout_s=2400)
        digest, name = lines[-2], lines[-1]
        assert name == IMAGE and digest.startswith("sha256:"), lines[-3:]
        for ref in (f"{registry}/jobq:{version}", f"{registry}/jobq@{digest}"):
            seen = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                                  check=True, capture_output=True, text=True, timeout=120)
            assert json.loads(seen.stdout)["Digest"] == digest, ref

        subprocess.run([helm, "package", str(REPO_ROOT / "charts" / "jobq"), "--destination",
                        str(tmp_path)], check=True, capture_output=True, timeout=120)
        package = tmp_path / f"jobq-{version}.tgz"
        pushed = subprocess.run([helm, "push", str(package), f"oci://{registry}/charts",
                                 "--plain-http"], capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0 and "Digest:" in pushed.stdout + pushed.stderr, pushed

        chart = f"oci://{registry}/charts/jobq"
        shown = subprocess.run([helm, "show", "chart", chart, "--version", version,
                                "--plain-http"], check=True, capture_output=True, text=True,
                               timeout=120)
        meta = yaml.safe_load(shown.stdout)
        assert (meta["version"], meta["appVersion"]) == (version, version)
        rendered = subprocess.run(
            [helm, "template", "jobq", chart, "--version", version, "--plain-http",
             "--set", f"image.repository={registry}/jobq", "--set", f"image.digest={digest}"],
            check=True, capture_output=True, text=True, timeout=120).stdout
        images = {line.split("image:", 1)[1].strip() for line in rendered.splitlines()
                  if line.strip().startswith("image:") and "/jobq" in line}
        assert images == {f"{registry}/jobq:{version}@{digest}"}, images
