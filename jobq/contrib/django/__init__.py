"""jobq for Django: add ``"jobq.contrib.django"`` to ``INSTALLED_APPS`` and set
``settings.JOBQ``; enqueue from views with ``enqueue_on_commit`` (the job exists only if the
transaction commits) or, when a crash between commit and enqueue must lose nothing, write the
job into the outbox with ``enqueue_in_outbox`` and run ``manage.py jobq_outbox_relay``."""

from __future__ import annotations

from jobq.contrib import missing_extra

try:
    import django  # noqa: F401
except ModuleNotFoundError as exc:
    raise missing_extra(exc, "django") from exc

from jobq.contrib.django.client import close_client, get_client, jobq_settings
from jobq.contrib.django.on_commit import enqueue_on_commit

__all__ = ["close_client", "enqueue_on_commit", "get_client", "jobq_settings"]
