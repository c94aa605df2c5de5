"""The ``django.tasks`` API from where it lives: Django itself from 6.0, else its backport
``django-tasks`` (the same API; Django 6 needs Python >= 3.12, and jobq's image runs 3.11).
Checked against Django 6.0's ``django/tasks/backends/base.py`` and django-tasks 0.12.0."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def _first(*names: str) -> ModuleType:
    for name in names[:-1]:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return importlib.import_module(names[-1])


_api = _first("django.tasks", "django_tasks")
_base = _first("django.tasks.base", "django_tasks.base")
_backends = _first("django.tasks.backends.base", "django_tasks.backends.base")
_exceptions = _first("django.tasks.exceptions", "django_tasks.exceptions")

BaseTaskBackend: Any = _backends.BaseTaskBackend
Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
TaskResultDoesNotExist: Any = _exceptions.TaskResultDoesNotExist
TASK_MIN_PRIORITY: int = _base.TASK_MIN_PRIORITY
TASK_MAX_PRIORITY: int = _base.TASK_MAX_PRIORITY
task_backends: Any = _api.task_backends
task: Any = _api.task
