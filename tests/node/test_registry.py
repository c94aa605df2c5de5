"""The release path through a real OCI registry (Debian's docker-registry on loopback, started
for the session by conftest.py): for each of the two versions the tier published, the image built
from the Dockerfile comes back by tag and by digest with the same digest and its version label,
and the chart pushed with `helm push` shows that version from `oci://` and renders every jobq
container pinned by that digest; the two images share every layer (only the label differs).
Needs root (buildah); no node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from .registry import Published


def _inspect(ref: str) -> dict[str, object]:
    seen = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True, text=True, timeout=120)
    found: dict[str, object] = json.loads(seen.stdout)
    return found


def test_image_and_chart_read_back_from_the_registry_by_version_and_digest(
        published: Published, helm: Path, tmp_path: Path) -> None:
    env = {"HELM_CACHE_HOME": str(tmp_path / "cache"), "HELM_CONFIG_HOME": str(tmp_path / "config"),
           "HELM_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    assert len(set(published.digests.values())) == len(published.versions) == 2, published
    # The version label is the Dockerfile's last step: the next version shares every layer.
    first, second = (_inspect(f"{published.repository}@{d}")["Layers"] for d in published.digests.values())
    assert first == second, (first, second)
    for version, digest in published.digests.items():
        for ref in (f"{published.repository}:{version}", f"{published.repository}@{digest}"):
            seen = _inspect(ref)
            assert seen["Digest"] == digest, ref
            labels = seen["Labels"]
            assert isinstance(labels, dict)
            assert labels["org.opencontainers.image.version"] == version, ref

        shown = subprocess.run([str(helm), "show", "chart", published.chart, "--version", version,
                                "--plain-http"], check=True, capture_output=True, text=True,
                               timeout=120, env=env)
        meta = yaml.safe_load(shown.stdout)
        assert (meta["version"], meta["appVersion"]) == (version, version)
        rendered = subprocess.run(
            [str(helm), "template", "jobq", published.chart, "--version", version, "--plain-http",
             "--set", f"image.repository={published.repository}", "--set", f"image.digest={digest}"],
            check=True, capture_output=True, text=True, timeout=120, env=env).stdout
        images = {line.split("image:", 1)[1].strip().strip('"') for line in rendered.splitlines()
                  if line.strip().startswith("image:") and "/jobq" in line}
        assert images == {published.image(version)}, images
