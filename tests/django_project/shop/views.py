"""The README's view: save the order and enqueue its email in one transaction."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from django_project.shop.models import Order
from jobq.contrib.django import enqueue_on_commit


@transaction.atomic
def create_order(request: HttpRequest) -> JsonResponse:
    order = Order.objects.create(email=request.POST["email"], name=request.POST["name"])
    job_id = enqueue_on_commit("welcome-email", f"order-{order.pk}",
                               {"email": order.email, "name": order.name})
    if request.POST.get("fail"):
        raise RuntimeError("the view fails after enqueue_on_commit: the transaction rolls back")
    return JsonResponse({"order": order.pk, "jobId": job_id}, status=201)
