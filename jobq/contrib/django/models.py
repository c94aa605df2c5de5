"""The outbox as a Django model (table ``jobq_outbox``, the shape of
``jobq.contrib.outbox.schema``); rows are written by ``enqueue_in_outbox`` and moved into jobq by
``manage.py jobq_outbox_relay`` (or ``jobq outbox relay``)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from jobq.contrib.outbox.schema import DEFAULT_TABLE, TASK_MAX_CHARS


class OutboxJob(models.Model):
    id = models.BigAutoField(primary_key=True)
    task = models.CharField(max_length=TASK_MAX_CHARS)
    payload = models.JSONField()
    priority = models.SmallIntegerField(null=True)
    delay_s = models.FloatField(default=0.0, db_default=0.0)
    created_at = models.DateTimeField(db_default=Now())
    error = models.TextField(null=True)

    class Meta:
        db_table = DEFAULT_TABLE
        verbose_name = "outbox job"

    def __str__(self) -> str:
        return f"{self.task} #{self.pk}"
