"""What every subcommand shares: settings, the registry, a client, and one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import click

from jobq.client import Client
from jobq.connection import REDIS_DOWN, connect
from jobq.errors import ConfigError, InvalidPayload, JobExpired, JobqError, NotFound
from jobq.logs import configure_logging
from jobq.loop import run
from jobq.ports import is_port_free
from jobq.settings import Settings, load_settings
from jobq.tasks import Registry, load_registry

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
EXIT_EXPIRED = 5
EXIT_STILL_RUNNING = 6  # status --wait: the wait ended before the job finished


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"jobq: error: {message}", err=True)
    sys.exit(code)


def describe(exc: JobqError) -> str:
    """The one line a user sees for an error; a payload error names every field at fault, as
    the API's ``details`` do (``email: String should match pattern ...; name: Field required``)."""
    if isinstance(exc, InvalidPayload) and exc.details:
        return f"{exc}: " + "; ".join(_field_problem(d) for d in exc.details)
    return str(exc)


def _field_problem(detail: dict[str, object]) -> str:
    loc = detail.get("loc")
    where = ".".join(map(str, loc)) if isinstance(loc, list) and loc else "(payload)"
    return f"{where}: {detail.get('msg')}".replace("\n", " ")


def port_taken(port: int, what: str, flag: str) -> ConfigError:
    return ConfigError(f"port {port} ({what}) is already in use: choose another with {flag} PORT")


def require_free_port(port: int, what: str, flag: str, host: str = "127.0.0.1") -> None:
    """Refuse a port that is taken before anything starts, naming the flag that changes it,
    instead of a bind traceback from deep inside a server (port 0 = any free port: always ok)."""
    if port and not is_port_free(port, host):
        raise port_taken(port, what, flag)


def settings_and_registry(
    *, logs_to_stderr: bool = False, tasks_required: bool = True
) -> tuple[Settings, Registry]:
    """Settings and tasks of this process. One-shot commands log to stderr, so their stdout
    (e.g. ``--json``) stays exactly what they print. Readers (``status``, ``queues``, ``dlq
    list/show``) find queues in Redis, so they also run with no ``JOBQ_TASKS`` at all."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format,
                      sys.stderr if logs_to_stderr else sys.stdout)
    make_cwd_importable()
    if not settings.tasks and not tasks_required:
        return settings, Registry([])
    return settings, load_registry(settings.tasks)


def make_cwd_importable() -> None:
    """Let ``JOBQ_TASKS=myapp.tasks`` name a module of the project the command runs in, as
    ``celery -A`` and ``rq worker`` do. Appended, not prepended: installed packages (jobq
    itself included) still win over folders of the same name in the cwd."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)


@asynccontextmanager
async def open_client(*, tasks_required: bool = True) -> AsyncIterator[Client]:
    settings, registry = settings_and_registry(logs_to_stderr=True, tasks_required=tasks_required)
    redis = connect(settings.redis_url)
    try:
        yield Client(redis, registry, settings)
    finally:
        await redis.aclose()


def run_async(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a subcommand's coroutine, turning expected failures into one line and an exit code."""
    try:
        run(fn())
    except JobExpired as exc:
        fail(str(exc), EXIT_EXPIRED)
    except NotFound as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except REDIS_DOWN as exc:
        fail(f"Redis is unreachable: {exc}", EXIT_UNAVAILABLE)
    except JobqError as exc:
        fail(describe(exc))
