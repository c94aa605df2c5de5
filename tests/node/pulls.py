"""Image pulls that fail, said at once: the pods come from the test registry, so a registry or
containerd host config that is wrong shows as a pod waiting in ErrImagePull or ImagePullBackOff.
These helpers report that with the kubelet's message (containerd's error: the address it tried and
why) as soon as it happens, instead of a `helm --wait` that times out minutes later."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from cluster.controlplane import ControlPlane

PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                           "ErrImageNeverPull"})
POLL_S = 2.0


def pull_failures(plane: ControlPlane, namespace: str) -> list[str]:
    """One line per container whose image could not be pulled, with the kubelet's own words."""
    result = plane.kubectl("get", "pods", "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return []
    found = []
    for pod in json.loads(result.stdout)["items"]:
        status = pod.get("status", {})
        for container in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
            waiting = container.get("state", {}).get("waiting", {})
            if waiting.get("reason") in PULL_FAILURES:
                found.append(f"{pod['metadata']['name']}/{container['name']} {container['image']}: "
                             f"{waiting['reason']}: {waiting.get('message', '')}")
    if found:  # ImagePullBackOff says only "Back-off pulling"; the Failed events say why
        events = plane.kubectl("get", "events", "-n", namespace, "--field-selector",
                               "reason=Failed", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
                               check=False).stdout.split("\n")
        found += [f"event: {line}" for line in dict.fromkeys(events) if line][-3:]
    return found


def check_pulls(plane: ControlPlane, namespace: str) -> None:
    """Raise with the reason when an image of that namespace could not be pulled."""
    if failures := pull_failures(plane, namespace):
        raise AssertionError("an image could not be pulled from the test registry:\n"
                             + "\n".join(failures))


def helm_watching_pulls(
    plane: ControlPlane, namespace: str, *args: str | Path, timeout_s: float
) -> tuple[int, str]:
    """`helm <args>` (an install or upgrade with --wait): (exit code, output). Stopped early, with
    AssertionError, when a pod of the release cannot pull its image."""
    with tempfile.TemporaryFile("w+") as log, subprocess.Popen(
            [str(plane.bin_dir / "helm"), *map(str, args)], env=plane.env(), stdout=log,
            stderr=subprocess.STDOUT, text=True) as helm:
        deadline = time.monotonic() + timeout_s
        try:
            while helm.poll() is None:
                check_pulls(plane, namespace)
                if time.monotonic() > deadline:
                    raise AssertionError(f"helm {args[0]} still running after {timeout_s:.0f}s")
                time.sleep(POLL_S)
        finally:
            if helm.poll() is None:
                helm.kill()
        helm.wait()
        log.seek(0)
        return helm.returncode, log.read()
