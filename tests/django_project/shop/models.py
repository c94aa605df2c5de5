from __future__ import annotations

from django.db import models


class Order(models.Model):
    email = models.EmailField()
    name = models.CharField(max_length=100)

    class Meta:
        app_label = "shop"
