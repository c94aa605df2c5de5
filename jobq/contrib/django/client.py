"""``settings.JOBQ`` onto jobq's ``Settings``, and the one ``SyncClient`` of a process.

``settings.JOBQ`` is a dict whose keys are jobq's settings in upper case, as in the environment
without the ``JOBQ_`` prefix (``REDIS_URL``, ``TASKS``, ``KEY_PREFIX``, ...); without it the
process reads its settings from the environment as every jobq process does. The client is made
on first use (a management command that never enqueues opens no connection), shared by every
thread, and closed when the process exits (``JobqConfig.ready`` registers ``close_client``)."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from pydantic import ValidationError

from jobq.settings import Settings, load_settings
from jobq.sync import SyncClient

_lock = threading.Lock()
_client: SyncClient | None = None


def jobq_settings() -> Settings:
    """jobq's settings from ``settings.JOBQ`` (or the environment when it is not set). An
    unknown or invalid key is an ``ImproperlyConfigured`` naming it, not silently dropped."""
    given: Any = getattr(django_settings, "JOBQ", None)
    if given is None:
        return load_settings()
    if not isinstance(given, dict):
        raise ImproperlyConfigured("settings.JOBQ must be a dict of jobq settings")
    try:
        return Settings(**{str(k).lower(): v for k, v in given.items()})
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]).upper() for e in exc.errors())
        raise ImproperlyConfigured(f"settings.JOBQ is invalid ({where}): {exc}") from None


def get_client() -> SyncClient:
    """The process's client, made on first use from ``jobq_settings()``."""
    global _client
    with _lock:
        if _client is None:
            _client = SyncClient(jobq_settings())
        return _client


def close_client() -> None:
    """Close the process's client (at exit, or when a test changes ``settings.JOBQ``); the next
    ``get_client()`` makes a new one."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close()
