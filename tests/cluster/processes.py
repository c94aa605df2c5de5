"""Control-plane processes: started in their own process groups, awaited, and stopped for sure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_S = 120.0  # one component from exec to healthy, on a loaded 2-core machine
STOP_GRACE_S = 10.0  # SIGTERM to SIGKILL
POLL_S = 0.2


class ComponentFailed(Exception):
    """A control-plane process exited or never became healthy."""


def _die_with_parent() -> None:
    """Runs in the child before exec: a SIGKILLed pytest must not leave an apiserver behind."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class Process:
    """A started control-plane process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if (code := self.popen.poll()) is not None:
            raise ComponentFailed(f"{self.name} exited {code}; last log lines:\n{self.log_tail()}")


@dataclass
class Processes:
    """Processes started in their own process groups, stopped in reverse order."""

    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str | Path]) -> Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            _stop(process.popen)
        self.started.clear()


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=STOP_GRACE_S)
    # Whatever the leader left in its group (it may have exited already) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def wait_until(
    condition: Callable[[], bool],
    *,
    what: str,
    timeout_s: float = READY_TIMEOUT_S,
    alive: Sequence[Process] = (),
) -> None:
    """Poll condition until true; fail early, with its log, if a process it depends on exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        for process in alive:
            process.check_alive()
        if condition():
            return
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in alive)
            raise ComponentFailed(f"timed out after {timeout_s:.0f}s waiting for {what}\n{logs}")
        time.sleep(POLL_S)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open while choosing, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def http_ok(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    """True when GET url answers 200; any connection or HTTP error is just "not yet"."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, TLS not up yet, HTTP 5xx (HTTPError is an OSError)
        return False
