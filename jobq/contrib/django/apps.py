"""The Django app: closes the process's client when the process exits and drops it when a test
changes ``settings.JOBQ``."""

from __future__ import annotations

import atexit
from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class JobqConfig(AppConfig):
    name = "jobq.contrib.django"
    label = "jobq"
    verbose_name = "jobq"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobq.contrib.django.client import close_client

        atexit.register(close_client)
        setting_changed.connect(_jobq_setting_changed, dispatch_uid="jobq-settings")


def _jobq_setting_changed(setting: str, **_: Any) -> None:
    if setting == "JOBQ":
        from jobq.contrib.django.client import close_client

        close_client()
