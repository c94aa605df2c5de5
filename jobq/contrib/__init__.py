"""Integrations with frameworks and databases, each in a module or package of its own, each
imported only by the applications that use it (their dependencies are extras: ``jobq[django]``,
``jobq[outbox]``, ``jobq[api]`` for FastAPI); nothing here is loaded by ``import jobq``."""

from __future__ import annotations


def missing_extra(exc: ModuleNotFoundError, extra: str) -> ModuleNotFoundError:
    """The error an integration raises when its extra is not installed: it names the extra."""
    return ModuleNotFoundError(f"{exc.msg}: this part of jobq needs pip install 'jobq[{extra}]'",
                               name=exc.name)
