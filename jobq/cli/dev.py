"""``jobq dev``: the whole system on one machine (SPEC §12).

An embedded Valkey (when ``REDIS_URL`` is unset; AOF on, so jobs survive a restart), then the API,
one worker per demo queue and the scheduler as child processes. Each child runs in its own session
so a terminal's Ctrl-C reaches only this supervisor, which then stops the children first (they
drain within their grace), the Valkey last; children also get SIGTERM should this process die.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import click

from jobq.embedded import ServerProcess, free_port, is_port_free, valkey_binary
from jobq.errors import ConfigError
from jobq.settings import load_settings

DEMO_QUEUES = ("email-queue:3", "report-queue:2", "cleanup-queue:1")
DEFAULT_REDIS_PORT = 6379
DATA_DIR = Path(".jobq/valkey")  # relative to the cwd: one dev environment per checkout
DEFAULT_SCHEDULES = Path("examples/schedules.yaml")
STOP_MARGIN_S = 10.0  # added to the worker grace before children are killed
POLL_S = 0.2  # how often children are checked for an unexpected exit
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]


class Signals:
    """SIGINT/SIGTERM counter: the first asks for a clean stop, the second for a forced one."""

    def __init__(self) -> None:
        self.count = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 2:
            click.echo("jobq dev: forcing stop", err=True)


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port of the API (on 127.0.0.1).")
@click.option("--metrics-port-base", type=click.IntRange(1, 65535 - len(DEMO_QUEUES)),
              default=9101, show_default=True,
              help="Metrics port of the first worker; the others use the next ports.")
@click.option("--redis-port", type=click.IntRange(1, 65535),
              help="Port of the embedded Valkey (default 6379 if free, else any free port).")
@click.option("--schedules", "schedules", type=click.Path(dir_okay=False, path_type=Path),
              help="Schedule file for the scheduler (default examples/schedules.yaml).")
def dev(port: int, metrics_port_base: int, redis_port: int | None,
        schedules: Path | None) -> None:
    """Run everything locally: Redis (embedded unless REDIS_URL is set), the API, one worker
    per demo queue and the scheduler. Ctrl-C stops it all."""
    settings = load_settings()
    schedule_file = _schedule_file(schedules)
    signals = Signals()
    server: ServerProcess | None = None
    if "redis_url" in settings.model_fields_set:
        url = settings.redis_url
    else:
        default = DEFAULT_REDIS_PORT if is_port_free(DEFAULT_REDIS_PORT) else free_port()
        port_ = redis_port or default
        server = ServerProcess(valkey_binary(), Path.cwd() / DATA_DIR, port=port_,
                               appendonly=True, detach=True)
        server.start()
        url = server.url
    try:
        env = {**os.environ, "REDIS_URL": url}
        env.setdefault("JOBQ_LOG_FORMAT", "console")
        commands = [("api", ["api", "--host", "127.0.0.1", "--port", str(port)])]
        for i, queue in enumerate(DEMO_QUEUES):
            commands.append((f"worker {queue.partition(':')[0]}", [
                "worker", "--queue", queue, "--metrics-port", str(metrics_port_base + i)]))
        if schedule_file is not None:
            commands.append(("scheduler", ["scheduler", "--file", str(schedule_file)]))
        last_metrics = metrics_port_base + len(DEMO_QUEUES) - 1
        dashboard = f", dashboard http://127.0.0.1:{port}/ui" if settings.ui else ""
        banner = (f"jobq dev: API http://127.0.0.1:{port} (docs /docs){dashboard}, "
                  f"metrics :{port}/metrics "
                  f"and workers :{metrics_port_base}-{last_metrics}, Redis {_safe_url(url)} "
                  "— Ctrl-C to stop")
        code = _supervise(commands, env, banner, signals,
                          settings.shutdown_grace_s + STOP_MARGIN_S)
    finally:
        if server is not None:
            server.stop()
    sys.exit(code)


def _supervise(commands: list[tuple[str, list[str]]], env: dict[str, str], banner: str,
               signals: Signals, stop_within_s: float) -> int:
    """Start the children, wait for a signal (exit 0) or a child's death (exit 1), stop them."""
    children: list[Child] = []
    code = 0
    try:
        for name, args in commands:
            if signals.count:
                break
            children.append(Child(name, _spawn(args, env)))
        else:
            click.echo(banner, err=True)
        while not signals.count:
            dead = next((c for c in children if c.popen.poll() is not None), None)
            if dead is not None:
                click.echo(f"jobq dev: {dead.name} exited with code {dead.popen.returncode}; "
                           "stopping everything", err=True)
                code = 1
                break
            time.sleep(POLL_S)
    finally:
        if signals.count:
            click.echo("jobq dev: stopping (Ctrl-C again to force)", err=True)
        _stop(children, signals, stop_within_s)
    return code


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        # -P: no cwd on sys.path, so a source checkout's jobq/ folder (run from the repo root)
        # cannot hide the installed package and its jobq.api/jobq.worker components.
        [sys.executable, "-P", "-m", "jobq", *args], env=env, start_new_session=True,
        preexec_fn=_die_with(os.getpid()),
    )


def _stop(children: list[Child], signals: Signals, within_s: float) -> None:
    """SIGTERM every child's process group, wait up to ``within_s`` (or a second Ctrl-C), then
    SIGKILL whatever is left."""
    forced_at = signals.count + 1
    for child in children:
        _killpg(child, signal.SIGTERM)
    deadline = time.monotonic() + within_s
    while (any(c.popen.poll() is None for c in children) and time.monotonic() < deadline
           and signals.count < forced_at):
        time.sleep(0.05)
    for child in children:
        if child.popen.poll() is None:
            _killpg(child, signal.SIGKILL)
        child.popen.wait()


def _killpg(child: Child, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.popen.pid, sig)


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec hook: the child gets SIGTERM when this process dies, even by SIGKILL (Linux)."""

    def hook() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # not Linux: best effort only
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _schedule_file(given: Path | None) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise ConfigError(f"--schedules {given}: no such file")
        return given.resolve()
    repo = Path(__file__).resolve().parents[2]  # a source checkout (editable install)
    for candidate in (Path.cwd() / DEFAULT_SCHEDULES, repo / DEFAULT_SCHEDULES):
        if candidate.is_file():
            return candidate
    click.echo(f"jobq dev: no {DEFAULT_SCHEDULES} found; running without the scheduler "
               "(give one with --schedules)", err=True)
    return None


def _safe_url(url: str) -> str:
    """The Redis URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
