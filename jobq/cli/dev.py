"""``jobq dev``: the whole system on one machine (see README "Quick start").

An embedded Valkey (when ``REDIS_URL`` is unset; AOF on, so jobs survive a restart), then the API,
one worker per queue of the configured tasks (the demo tasks unless ``JOBQ_TASKS`` says more) and
the scheduler as child processes. Each child runs in its own session so a terminal's Ctrl-C reaches
only this supervisor, which then stops the children first (they drain within their grace), the
Valkey last; children also get SIGTERM should this process die. One ``jobq dev`` per folder: its
state lives in ``.jobq/``, held by a lock for as long as it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import click

from jobq.cli.common import make_cwd_importable, require_free_port
from jobq.cli.extras import require_extra
from jobq.embedded import ServerProcess, die_with, free_port, valkey_binary
from jobq.errors import ConfigError
from jobq.ports import is_port_free
from jobq.settings import load_settings
from jobq.tasks import Registry, load_registry

DEMO_TASKS = "jobq.demo"  # what dev runs when JOBQ_TASKS is unset
DEMO_CONCURRENCY = {"email-queue": 3, "report-queue": 2, "cleanup-queue": 1}
OTHER_CONCURRENCY = 1  # workers of queues beyond the demo's (your own tasks)
DEFAULT_REDIS_PORT = 6379
STATE_DIR = Path(".jobq")  # relative to the cwd: one dev environment per checkout
DATA_DIR = STATE_DIR / "valkey"
LOCK_FILE = STATE_DIR / "dev.lock"
METRICS_HOST = "0.0.0.0"  # where workers serve /metrics
DEFAULT_SCHEDULES = Path("examples/schedules.yaml")
STOP_MARGIN_S = 10.0  # added to the worker grace before children are killed
POLL_S = 0.2  # how often children are checked for an unexpected exit


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
@click.option("--metrics-port-base", type=click.IntRange(1, 65535), default=9101,
              show_default=True,
              help="Metrics port of the first worker; the others use the next ports.")
@click.option("--redis-port", type=click.IntRange(1, 65535),
              help="Port of the embedded Valkey (default 6379 if free, else any free port).")
@click.option("--schedules", "schedules", type=click.Path(dir_okay=False, path_type=Path),
              help="Schedule file for the scheduler (default examples/schedules.yaml).")
@click.option("--reset", is_flag=True,
              help="Start clean: delete .jobq/ (the embedded Valkey's jobs and DLQ, the demo "
                   "outbox) first.")
def dev(port: int, metrics_port_base: int, redis_port: int | None,
        schedules: Path | None, reset: bool) -> None:
    """Run everything locally: Redis (embedded unless REDIS_URL is set), the API, one worker
    per queue (the demo tasks unless JOBQ_TASKS names others, e.g. JOBQ_TASKS=jobq.demo,myapp.tasks)
    and the scheduler. Ctrl-C stops it all."""
    require_extra("jobq dev", "api")
    settings = load_settings()
    embedded = "redis_url" not in settings.model_fields_set
    if embedded:
        require_extra("jobq dev without REDIS_URL", "embedded")
    if reset and not embedded:
        raise ConfigError("--reset clears the embedded Valkey's data in .jobq/; with REDIS_URL "
                          "set there is none (clear that Redis yourself)")
    lock = _hold_lock(Path.cwd() / LOCK_FILE)
    if reset:
        _reset(Path.cwd() / STATE_DIR)
    tasks = settings.tasks or [DEMO_TASKS]
    make_cwd_importable()
    queues = worker_queues(load_registry(tasks))
    _require_free_ports(port, metrics_port_base, queues, redis_port if embedded else None)
    schedule_file = _schedule_file(schedules)
    signals = Signals()
    server: ServerProcess | None = None
    if not embedded:
        url = settings.redis_url
    else:
        default = DEFAULT_REDIS_PORT if is_port_free(DEFAULT_REDIS_PORT) else free_port()
        server = ServerProcess(valkey_binary(), Path.cwd() / DATA_DIR, port=redis_port or default,
                               appendonly=True, detach=True)
        server.start()
        url = server.url
    try:
        env = {**os.environ, "REDIS_URL": url, "JOBQ_TASKS": ",".join(tasks)}
        env.setdefault("JOBQ_LOG_FORMAT", "console")
        commands = [("api", ["api", "--host", "127.0.0.1", "--port", str(port)])]
        for i, queue in enumerate(queues):
            commands.append((f"worker {queue.partition(':')[0]}", [
                "worker", "--queue", queue, "--metrics-port", str(metrics_port_base + i)]))
        if schedule_file is not None:
            commands.append(("scheduler", ["scheduler", "--file", str(schedule_file)]))
        last_metrics = metrics_port_base + len(queues) - 1
        dashboard = f", dashboard http://127.0.0.1:{port}/ui" if settings.ui else ""
        banner = (f"jobq dev: API http://127.0.0.1:{port} (docs /docs){dashboard}, "
                  f"metrics :{port}/metrics "
                  f"and workers :{metrics_port_base}-{last_metrics}, Redis {_safe_url(url)} "
                  "— Ctrl-C to stop\n"
                  f"jobq dev: for the CLI in another terminal: export REDIS_URL={_safe_url(url)} "
                  f"JOBQ_TASKS={','.join(tasks)}")
        code = _supervise(commands, env, banner, signals,
                          settings.shutdown_grace_s + STOP_MARGIN_S,
                          api_listening=lambda: not is_port_free(port))
    finally:
        if server is not None:
            server.stop()
        lock.close()
    sys.exit(code)


def worker_queues(registry: Registry) -> list[str]:
    """``NAME:CONCURRENCY`` of each queue to run a worker for: the demo's first, at the demo's
    concurrency, then the other queues of the configured tasks."""
    demo_order = list(DEMO_CONCURRENCY)
    ordered = sorted(registry.queues,
                     key=lambda q: (demo_order.index(q) if q in demo_order else len(demo_order), q))
    return [f"{q}:{DEMO_CONCURRENCY.get(q, OTHER_CONCURRENCY)}" for q in ordered]


def _hold_lock(path: Path) -> TextIO:
    """Refuse a second ``jobq dev`` in this folder (it would start a second Valkey on the same
    data and fight for the ports); the lock lasts as long as the returned file stays open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(f"jobq dev is already running in {path.parent.parent} (pid {pid}): "
                          "use that one, or stop it (Ctrl-C in its terminal) first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _reset(state: Path) -> None:
    """Delete everything of an earlier run in ``state`` but the lock this run holds."""
    for entry in state.iterdir():
        if entry.name == LOCK_FILE.name:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    click.echo(f"jobq dev: --reset: cleared {state} (jobs, DLQ entries, outbox)", err=True)


def _require_free_ports(api_port: int, metrics_base: int, queues: list[str],
                        redis_port: int | None) -> None:
    """Every port dev will bind, checked before anything starts, each error naming its flag."""
    require_free_port(api_port, "the API", "--port")
    last = metrics_base + len(queues) - 1
    if last > 65535:
        raise ConfigError(f"--metrics-port-base {metrics_base}: {len(queues)} workers need ports "
                          f"up to {last}; choose a lower one")
    for i, queue in enumerate(queues):
        require_free_port(metrics_base + i, f"metrics of worker {queue.partition(':')[0]}",
                          "--metrics-port-base", host=METRICS_HOST)
    if redis_port is not None:
        require_free_port(redis_port, "the embedded Valkey", "--redis-port")


def _supervise(commands: list[tuple[str, list[str]]], env: dict[str, str], banner: str,
               signals: Signals, stop_within_s: float, api_listening: Callable[[], bool]) -> int:
    """Start the children, wait for a signal (exit 0) or a child's death (exit 1), stop them.
    The banner comes once the API listens, so its URLs answer when the reader tries them."""
    children: list[Child] = []
    code = 0
    announced = False
    try:
        for name, args in commands:
            if signals.count:
                break
            children.append(Child(name, _spawn(args, env)))
        while not signals.count:
            if not announced and api_listening():
                click.echo(banner, err=True)
                announced = True
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
        preexec_fn=die_with(os.getpid()),
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
