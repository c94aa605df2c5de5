"""Django tasks (``django.tasks``'s ``@task``) that the jobq backend runs on a real worker."""

from __future__ import annotations

from typing import Any

from jobq.contrib.django.tasks_api import task


@task(queue_name="django-tasks")
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="django-tasks", takes_context=True)
def attempt_of(context: Any, label: str) -> dict[str, Any]:
    return {"label": label, "attempt": context.attempt}


@task(queue_name="django-tasks")
async def shout(word: str) -> str:
    return word.upper()


@task(queue_name="django-tasks")
def count_orders() -> int:
    from django_project.shop.models import Order

    return Order.objects.count()


@task(queue_name="django-tasks")
def fail(message: str) -> None:
    raise ValueError(message)
