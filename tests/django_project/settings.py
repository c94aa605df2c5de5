"""The Django project of the tests: two PostgreSQL databases of tests/postgres.py's cluster, the
jobq app, a shop app whose views enqueue jobs, and jobq as the ``django.tasks`` backend. jobq's
own settings come from the environment (``REDIS_URL``, ``JOBQ_*``) in worker processes; a test
gives them as ``settings.JOBQ`` with ``override_settings``."""

from __future__ import annotations

import os

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_project.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "jobq.contrib.django", "django_project.shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(name: str) -> dict[str, object]:
    return {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": "postgres",
            "HOST": "127.0.0.1", "PORT": os.environ.get("JOBQ_TEST_PG_PORT", "5432")}


DATABASES = {"default": _database("shop"), "other": _database("other")}

TASKS = {
    "default": {
        "BACKEND": "jobq.contrib.django.backend.JobqBackend",
        "QUEUES": ["django-tasks", "django-other"],
    },
}
