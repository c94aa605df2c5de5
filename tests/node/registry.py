"""A real OCI registry for the node tier: Debian's ``docker-registry`` (distribution 2.8) on a
free loopback port, with its own config and storage under the test's folder, stopped after.
The image is pushed to it by hack/image.sh (buildah) and the chart by ``helm push``; helm and
containerd pull from it over plain HTTP (loopback only): containerd through a hosts.toml of its
own (`containerd_hosts`), helm with ``--plain-http``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jobq.embedded import free_port

START_TIMEOUT_S = 30.0
CHART_REPOSITORY = "charts"  # oci://<registry>/charts/jobq, as a team's registry would hold it


@dataclass(frozen=True)
class Published:
    """What the registry holds: the jobq image and chart, each version by tag and the image's
    digest. The first version is what gets installed, the second what it is upgraded to."""

    address: str  # 127.0.0.1:<port>
    digests: dict[str, str]  # version -> the image's digest (sha256:...), in push order

    @property
    def repository(self) -> str:
        return f"{self.address}/jobq"

    @property
    def chart(self) -> str:
        return f"oci://{self.address}/{CHART_REPOSITORY}/jobq"

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(self.digests)

    def image(self, version: str) -> str:
        """The image as a pod names it: by tag and pinned by digest (what the chart renders)."""
        return f"{self.repository}:{version}@{self.digests[version]}"


def next_version(version: str) -> str:
    """The next patch release of a version (0.1.0 -> 0.1.1): what an upgrade goes to."""
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if found is None:
        raise ValueError(f"not a release version (X.Y.Z): {version!r}")
    major, minor, patch = found.groups()
    return f"{major}.{minor}.{int(patch) + 1}"


def push_chart(helm: Path, chart_dir: Path, address: str, version: str, workdir: Path) -> None:
    """Package the chart as `version` (its appVersion too, so the image tag follows) and push it."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for kind in ("CACHE", "CONFIG", "DATA"):  # nothing written to $HOME
        env[f"HELM_{kind}_HOME"] = str(workdir / "helm" / kind.lower())
    for argv in (
        [helm, "package", chart_dir, "--version", version, "--app-version", version,
         "--destination", workdir],
        [helm, "push", workdir / f"jobq-{version}.tgz", f"oci://{address}/{CHART_REPOSITORY}",
         "--plain-http"],
    ):
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} exited {done.returncode}: "
                               f"{done.stderr.strip()}")


def containerd_hosts(config_path: Path, address: str) -> Path:
    """containerd's registry host config for the test registry: plain HTTP to it (containerd
    reads <config_path>/<host:port>/hosts.toml, see containerd's docs/hosts.md); the CRI's
    `registry.config_path` names config_path."""
    hosts = config_path / address / "hosts.toml"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text(f'server = "http://{address}"\n\n'
                     f'[host."http://{address}"]\n  capabilities = ["pull", "resolve"]\n')
    return config_path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running_registry(workdir: Path) -> Iterator[str]:
    """The registry's address, ``127.0.0.1:<port>``, while it runs."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise FileNotFoundError("docker-registry is not installed (apt-get install docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
        f"http:\n  addr: {address}\n"
    )
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(f"http://{address}/v2/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: "
                                   f"{(workdir / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
