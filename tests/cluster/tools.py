"""The Kubernetes test binaries: from $JOBQ_K8S_BIN, or built and cached by hack/k8s-tools.sh."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_SCRIPT = REPO_ROOT / "hack" / "k8s-tools.sh"
VERSIONS_FILE = REPO_ROOT / "hack" / "k8s-versions.env"

REQUIRED_TOOLS = ("etcd", "kube-apiserver", "kubectl", "helm")
# Without these the API works but nothing turns a Deployment into Running pods.
WORKLOAD_TOOLS = ("kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml")


def pinned_versions() -> dict[str, str]:
    """The KEY=value pins of hack/k8s-versions.env (what hack/k8s-tools.sh builds)."""
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


class ToolsUnavailable(Exception):
    """The Kubernetes binaries could not be found or built."""

    def __init__(self, message: str, *, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode  # the script's exit code, when a script failed


def find_bin_dir(*, build_timeout_s: float) -> Path:
    """Bin dir holding REQUIRED_TOOLS: $JOBQ_K8S_BIN, else what hack/k8s-tools.sh prints (building if needed).

    The script's progress is copied to our stderr as it comes, so a cold build is visibly alive.
    """
    if env_dir := os.environ.get("JOBQ_K8S_BIN"):
        bin_dir = Path(env_dir)
    else:
        bin_dir = _run_tools_script(build_timeout_s)
    missing = [tool for tool in REQUIRED_TOOLS if not (bin_dir / tool).is_file()]
    if missing:
        raise ToolsUnavailable(f"{bin_dir} lacks {', '.join(missing)}")
    return bin_dir


def _run_tools_script(timeout_s: float) -> Path:
    """Run hack/k8s-tools.sh; the bin dir it prints last."""
    return Path(run_script(TOOLS_SCRIPT, timeout_s=timeout_s)[-1])


def run_script(script: Path, *args: str, timeout_s: float) -> list[str]:
    """Run a bash script (killing its whole process group after timeout_s); its stdout lines.

    Its stderr (progress) is copied to ours as it comes, so a cold build is visibly alive.
    """
    if shutil.which("bash") is None:
        raise ToolsUnavailable(f"bash is not on PATH, so {script.name} cannot run")
    tail: collections.deque[str] = collections.deque(maxlen=30)
    with subprocess.Popen(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        timer = threading.Timer(timeout_s, _kill_group, args=(proc,))
        timer.start()
        try:
            assert proc.stderr is not None and proc.stdout is not None
            for line in proc.stderr:
                tail.append(line)
                sys.stderr.write(line)
            stdout = proc.stdout.read()
            returncode = proc.wait()
        finally:
            timer.cancel()
            _kill_group(proc)
    name = f"hack/{script.name}"
    if returncode != 0:
        why = "timed out" if returncode == -signal.SIGKILL else f"exited {returncode}"
        raise ToolsUnavailable(f"{name} {why}:\n{''.join(tail)}", returncode=returncode)
    lines = stdout.strip().splitlines()
    if not lines:
        raise ToolsUnavailable(f"{name} printed nothing")
    return lines


def _kill_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
